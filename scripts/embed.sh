#!/bin/sh
# Embeds a text file in C: embed.sh SYMBOL INPUT OUTPUT.c
# defines `const char SYMBOL[]` (NUL-terminated) and `const size_t SYMBOL_len`.
set -e
sym=$1 in=$2 out=$3
{
    printf '/* Generated from %s by scripts/embed.sh; do not edit. */\n#include <stddef.h>\n' "$(basename "$in")"
    printf 'const char %s[] = {\n' "$sym"
    od -An -v -tx1 "$in" | sed -e 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^/    /'
    printf '    0x00};\nconst size_t %s_len = sizeof(%s) - 1;\n' "$sym" "$sym"
} > "$out.tmp"
mv "$out.tmp" "$out"
