/* Lua patterns with a step budget.
 *
 * The standard matcher (lstrlib.c) backtracks in C without ever returning to the VM, so the
 * instruction hook cannot stop it: ("a?"):rep(26)..("a"):rep(26) takes 2^26 steps, ".-.-.-y"
 * over a long subject n^4. This matcher implements the same pattern language (single-char
 * classes, sets, the quantifiers * + - ?, captures and position captures, %1-%9, %b, %f,
 * the ^ and $ anchors) as a recursive backtracking matcher; each step (an attempt at a
 * pattern item, a character tried by a quantifier, a byte scanned by %b) is counted and the
 * count is charged to the state's instruction budget in batches. A pattern that runs out of
 * budget raises the usual "instruction limit exceeded" through sl_vm_charge.
 *
 * Positions are kept as pointers into the subject, which stays on the Lua stack (or in the
 * gmatch closure's upvalues) for as long as they are used. */
#include "lua_match.h"

#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>

#include "lua_vm.h"

#define MATCH_MAXCAPTURES 32 /* as LUA_MAXCAPTURES */
#define MATCH_MAXDEPTH 200   /* recursion of the matcher: "pattern too complex" past it */
#define MATCH_BATCH 256      /* steps counted locally before they are charged */
#define MATCH_SCAN_BYTES 16  /* bytes scanned by memmem/memcmp per charged step */
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define SPECIALS "^$*+?.([%-"

#define uchar(c) ((unsigned char)(c))

struct mstate {
    lua_State *L;
    const char *src;     /* subject */
    const char *src_end;
    const char *pat_end; /* the pattern is NUL-terminated: *pat_end == '\0' */
    int depth;           /* recursion left */
    int level;           /* captures open or closed */
    long steps;          /* steps not yet charged */
    struct {
        const char *init;
        ptrdiff_t len;
    } cap[MATCH_MAXCAPTURES];
};

static void charge(struct mstate *ms, long n)
{
    ms->steps += n;
    if (ms->steps >= MATCH_BATCH) {
        long s = ms->steps;
        ms->steps = 0;
        sl_vm_charge(ms->L, s);
    }
}

static void ms_init(struct mstate *ms, lua_State *L, const char *s, size_t ls, const char *pend)
{
    ms->L = L;
    ms->src = s;
    ms->src_end = s + ls;
    ms->pat_end = pend;
    ms->steps = 0;
}

static void ms_reset(struct mstate *ms)
{
    ms->level = 0;
    ms->depth = MATCH_MAXDEPTH;
}

/* Charges the steps still counted locally. */
static void ms_flush(struct mstate *ms)
{
    long s = ms->steps;
    ms->steps = 0;
    if (s > 0)
        sl_vm_charge(ms->L, s);
}

/* The end of the single-char class starting at p. */
static const char *class_end(struct mstate *ms, const char *p)
{
    char c = *p++;

    if (c == '%') {
        if (p >= ms->pat_end)
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        do { /* the first ']' after '[' or '[^' is a member */
            if (p >= ms->pat_end)
                luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*p++ == '%' && p < ms->pat_end)
                p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

/* Does c belong to class %cl (cl a letter: a c d g l p s u w x, upper case negates;
 * anything else stands for itself)? */
static int class_match(int c, int cl)
{
    int r;

    switch (tolower(cl)) {
    case 'a': r = isalpha(c); break;
    case 'c': r = iscntrl(c); break;
    case 'd': r = isdigit(c); break;
    case 'g': r = isgraph(c); break;
    case 'l': r = islower(c); break;
    case 'p': r = ispunct(c); break;
    case 's': r = isspace(c); break;
    case 'u': r = isupper(c); break;
    case 'w': r = isalnum(c); break;
    case 'x': r = isxdigit(c); break;
    default: return cl == c;
    }
    if (isupper(cl))
        r = !r;
    return r != 0;
}

/* Does c belong to the set [ ... ] from p ('[') to ec (its ']')? */
static int set_match(int c, const char *p, const char *ec)
{
    int want = 1;

    p++;
    if (*p == '^') {
        want = 0;
        p++;
    }
    for (; p < ec; p++) {
        if (*p == '%') {
            p++;
            if (class_match(c, uchar(*p)))
                return want;
        } else if (p[1] == '-' && p + 2 < ec) {
            if (uchar(p[0]) <= c && c <= uchar(p[2]))
                return want;
            p += 2;
        } else if (uchar(*p) == c) {
            return want;
        }
    }
    return !want;
}

/* Does the subject byte at s match the class p..ep? A set costs by its length. */
static int single_match(struct mstate *ms, const char *s, const char *p, const char *ep)
{
    if (s >= ms->src_end)
        return 0;
    int c = uchar(*s);
    switch (*p) {
    case '.':
        charge(ms, 1);
        return 1;
    case '%':
        charge(ms, 1);
        return class_match(c, uchar(p[1]));
    case '[':
        charge(ms, 1 + (ep - p) / MATCH_SCAN_BYTES);
        return set_match(c, p, ep - 1);
    default:
        charge(ms, 1);
        return uchar(*p) == c;
    }
}

static const char *do_match(struct mstate *ms, const char *s, const char *p);

static const char *max_expand(struct mstate *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t i = 0;

    while (single_match(ms, s + i, p, ep))
        i++;
    for (; i >= 0; i--) { /* try the rest after the longest run, then shorter ones */
        const char *r = do_match(ms, s + i, ep + 1);
        if (r != NULL)
            return r;
    }
    return NULL;
}

static const char *min_expand(struct mstate *ms, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = do_match(ms, s, ep + 1);
        if (r != NULL)
            return r;
        if (!single_match(ms, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *start_capture(struct mstate *ms, const char *s, const char *p, int what)
{
    if (ms->level >= MATCH_MAXCAPTURES)
        luaL_error(ms->L, "too many captures");
    ms->cap[ms->level].init = s;
    ms->cap[ms->level].len = what;
    ms->level++;
    const char *r = do_match(ms, s, p);
    if (r == NULL)
        ms->level--;
    return r;
}

static const char *end_capture(struct mstate *ms, const char *s, const char *p)
{
    int l = ms->level - 1;

    while (l >= 0 && ms->cap[l].len != CAP_UNFINISHED)
        l--;
    if (l < 0)
        luaL_error(ms->L, "invalid pattern capture");
    ms->cap[l].len = s - ms->cap[l].init;
    const char *r = do_match(ms, s, p);
    if (r == NULL)
        ms->cap[l].len = CAP_UNFINISHED;
    return r;
}

/* %1-%9: the text of a closed capture again. */
static const char *back_reference(struct mstate *ms, const char *s, int digit)
{
    int l = digit - '1';

    if (l < 0 || l >= ms->level || ms->cap[l].len == CAP_UNFINISHED)
        luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    if (ms->cap[l].len < 0) /* a position capture never matches text */
        return NULL;
    size_t len = (size_t)ms->cap[l].len;
    charge(ms, 1 + (long)(len / MATCH_SCAN_BYTES));
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->cap[l].init, s, len) == 0)
        return s + len;
    return NULL;
}

/* %bxy: a balanced run from x to its matching y. */
static const char *balance(struct mstate *ms, const char *s, const char *p)
{
    if (p + 1 >= ms->pat_end)
        luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p)
        return NULL;
    char open = p[0], close = p[1];
    long depth = 1;
    while (++s < ms->src_end) {
        charge(ms, 1);
        if (*s == close) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

/* Matches pattern p (to ms->pat_end) at s; returns the end of the match or NULL. */
static const char *do_match(struct mstate *ms, const char *s, const char *p)
{
    if (ms->depth-- == 0)
        luaL_error(ms->L, "pattern too complex");
    while (s != NULL && p != ms->pat_end) {
        charge(ms, 1);
        switch (*p) {
        case '(':
            if (p + 1 < ms->pat_end && p[1] == ')')
                s = start_capture(ms, s, p + 2, CAP_POSITION);
            else
                s = start_capture(ms, s, p + 1, CAP_UNFINISHED);
            goto out;
        case ')':
            s = end_capture(ms, s, p + 1);
            goto out;
        case '$':
            if (p + 1 == ms->pat_end) {
                if (s != ms->src_end)
                    s = NULL;
                goto out;
            }
            break;
        case '%':
            if (p[1] == 'b') {
                s = balance(ms, s, p + 2);
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (*p != '[')
                    luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                const char *ep = class_end(ms, p);
                int prev = s == ms->src ? '\0' : uchar(s[-1]);
                int cur = s < ms->src_end ? uchar(*s) : '\0';
                if (set_match(prev, p, ep - 1) || !set_match(cur, p, ep - 1))
                    s = NULL;
                p = ep;
                continue;
            }
            if (isdigit(uchar(p[1]))) {
                s = back_reference(ms, s, uchar(p[1]));
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }

        /* a single-char class, maybe followed by a quantifier */
        const char *ep = class_end(ms, p);
        char q = *ep; /* '\0' at the pattern's end */
        if (!single_match(ms, s, p, ep)) {
            if (q == '*' || q == '?' || q == '-')
                p = ep + 1; /* zero repetitions are fine */
            else
                s = NULL;
            continue;
        }
        switch (q) {
        case '?': {
            const char *r = do_match(ms, s + 1, ep + 1);
            if (r != NULL) {
                s = r;
                goto out;
            }
            p = ep + 1;
            continue;
        }
        case '+':
            s = max_expand(ms, s + 1, p, ep);
            goto out;
        case '*':
            s = max_expand(ms, s, p, ep);
            goto out;
        case '-':
            s = min_expand(ms, s, p, ep);
            goto out;
        default:
            s++;
            p = ep;
            continue;
        }
    }
out:
    ms->depth++;
    return s;
}

/* ---- captures ---- */

static void push_capture(struct mstate *ms, int i, const char *s, const char *e)
{
    if (i >= ms->level) {
        if (i != 0)
            luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(ms->L, s, (size_t)(e - s)); /* the whole match */
        return;
    }
    ptrdiff_t l = ms->cap[i].len;
    if (l == CAP_UNFINISHED)
        luaL_error(ms->L, "unfinished capture");
    if (l == CAP_POSITION)
        lua_pushinteger(ms->L, (lua_Integer)(ms->cap[i].init - ms->src) + 1);
    else
        lua_pushlstring(ms->L, ms->cap[i].init, (size_t)l);
}

/* Pushes every capture (the whole match when there is none and s is given). */
static int push_captures(struct mstate *ms, const char *s, const char *e)
{
    int n = ms->level == 0 && s != NULL ? 1 : ms->level;

    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_capture(ms, i, s, e);
    return n;
}

/* ---- find, match, gmatch, gsub ---- */

/* A 1-based start position (negative counts from the end) as an offset + 1, clamped. */
static size_t start_pos(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (p[i] != '\0' && strchr(SPECIALS, p[i]) != NULL)
            return 1;
    return 0;
}

/* The first occurrence of p[0..lp) in s[0..ls), lp > 0, or NULL. */
static const char *mem_find(const char *s, size_t ls, const char *p, size_t lp)
{
    const char *end = s + ls;

    while (lp <= (size_t)(end - s)) {
        const char *hit = memchr(s, *p, (size_t)(end - s) - lp + 1);
        if (hit == NULL)
            return NULL;
        if (memcmp(hit + 1, p + 1, lp - 1) == 0)
            return hit;
        s = hit + 1;
    }
    return NULL;
}

static int find_aux(lua_State *L, int find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_pos(luaL_optinteger(L, 3, 1), ls) - 1;

    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        sl_vm_charge(L, 1 + (long)((ls - init) / MATCH_SCAN_BYTES));
        const char *hit = lp == 0 ? s + init : mem_find(s + init, ls - init, p, lp);
        if (hit != NULL) {
            lua_pushinteger(L, (lua_Integer)(hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)(hit - s + lp));
            return 2;
        }
        luaL_pushfail(L);
        return 1;
    }

    struct mstate ms;
    int anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    ms_init(&ms, L, s, ls, p + lp);
    const char *s1 = s + init;
    do {
        ms_reset(&ms);
        const char *e = do_match(&ms, s1, p);
        if (e != NULL) {
            ms_flush(&ms);
            if (!find)
                return push_captures(&ms, s1, e);
            lua_pushinteger(L, (lua_Integer)(s1 - s) + 1);
            lua_pushinteger(L, (lua_Integer)(e - s));
            return push_captures(&ms, NULL, NULL) + 2;
        }
    } while (s1++ < ms.src_end && !anchor);
    ms_flush(&ms);
    luaL_pushfail(L);
    return 1;
}

static int str_find(lua_State *L)
{
    return find_aux(L, 1);
}

static int str_match(lua_State *L)
{
    return find_aux(L, 0);
}

struct gmatch_pos {
    size_t next;    /* offset where the next search starts */
    ptrdiff_t last; /* end offset of the last match, or -1 */
};

/* The gmatch iterator: upvalues subject, pattern, struct gmatch_pos. */
static int gmatch_next(lua_State *L)
{
    size_t ls, lp;
    const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
    struct gmatch_pos *g = lua_touserdata(L, lua_upvalueindex(3));
    struct mstate ms;

    ms_init(&ms, L, s, ls, p + lp);
    for (size_t at = g->next; at <= ls; at++) {
        ms_reset(&ms);
        const char *e = do_match(&ms, s + at, p);
        if (e != NULL && e - s != g->last) {
            g->next = (size_t)(e - s);
            g->last = e - s;
            ms_flush(&ms);
            return push_captures(&ms, s + at, e);
        }
    }
    g->next = ls + 1;
    ms_flush(&ms);
    return 0;
}

static int str_gmatch(lua_State *L)
{
    size_t ls;
    luaL_checklstring(L, 1, &ls);
    luaL_checkstring(L, 2);
    size_t init = start_pos(luaL_optinteger(L, 3, 1), ls) - 1;

    lua_settop(L, 2);
    struct gmatch_pos *g = lua_newuserdatauv(L, sizeof(*g), 0);
    g->next = init > ls ? ls + 1 : init;
    g->last = -1;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

/* Appends the replacement string (argument 3) for the match s..e, expanding %0-%9 and %%. */
static void add_string(struct mstate *ms, luaL_Buffer *b, const char *s, const char *e)
{
    lua_State *L = ms->L;
    size_t l;
    const char *r = lua_tolstring(L, 3, &l);
    const char *end = r + l, *q;

    charge(ms, 1 + (long)(l / MATCH_SCAN_BYTES));
    while ((q = memchr(r, '%', (size_t)(end - r))) != NULL) {
        luaL_addlstring(b, r, (size_t)(q - r));
        q++; /* the byte after '%' ('\0' at the end) */
        if (*q == '%') {
            luaL_addchar(b, '%');
        } else if (*q == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit(uchar(*q))) {
            push_capture(ms, *q - '1', s, e);
            luaL_tolstring(L, -1, NULL);
            lua_remove(L, -2);
            luaL_addvalue(b);
        } else {
            luaL_error(L, "invalid use of '%%' in replacement string");
        }
        r = q + 1;
    }
    luaL_addlstring(b, r, (size_t)(end - r));
}

/* Appends the replacement of s..e; returns 1 if the text changed. */
static int add_value(struct mstate *ms, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = ms->L;

    if (tr == LUA_TFUNCTION) {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
    } else if (tr == LUA_TTABLE) {
        push_capture(ms, 0, s, e);
        lua_gettable(L, 3);
    } else {
        add_string(ms, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1))
        return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int str_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    int tr = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    const char *src = s, *last = NULL;
    lua_Integer n = 0;
    int changed = 0;
    struct mstate ms;
    luaL_Buffer b;

    luaL_argexpected(L,
                     tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                         tr == LUA_TTABLE,
                     3, "string/function/table");
    int anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    luaL_buffinit(L, &b);
    ms_init(&ms, L, s, ls, p + lp);
    while (n < max_n) {
        ms_reset(&ms);
        const char *e = do_match(&ms, src, p);
        if (e != NULL && e != last) {
            n++;
            changed |= add_value(&ms, &b, src, e, tr);
            src = last = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    ms_flush(&ms);
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void sl_lua_match_register(lua_State *L, int idx)
{
    static const luaL_Reg fns[] = {
        {"find", str_find},
        {"match", str_match},
        {"gmatch", str_gmatch},
        {"gsub", str_gsub},
        {NULL, NULL},
    };

    idx = lua_absindex(L, idx);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, idx, f->name);
    }
}
