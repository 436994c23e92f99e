/* geo: a Lua library for transformation code — great-circle distances and a coarse grid cell
 * key, the two things location features are made of.
 *
 *   transformation = function(r)
 *     r.km_from_home = geo.distance(r.lat, r.lon, r.home_lat, r.home_lon)
 *     r.cell = geo.cell(r.lat, r.lon, 0.1)
 *     return r
 *   end
 *
 * geo.distance(lat1, lon1, lat2, lon2) → kilometres (haversine, Earth radius 6371.0088 km);
 * geo.cell(lat, lon, size_deg) → "<row>:<col>", the grid cell of size_deg degrees holding the
 * point. Latitudes must lie in [-90, 90], longitudes in [-180, 180]; anything else (or a
 * non-number) raises a Lua error naming the argument. Constant time, no allocation beyond
 * the result, no state: safe on every worker thread at once. */
#include <math.h>
#include <stdio.h>

#include <sluice/plugin.h>

#define EARTH_KM 6371.0088

static const struct sl_plugin_api *api;

static int num_arg(const struct sl_scalar *a, int i, const char *what, double lo, double hi,
                   double *out, struct sl_error *err)
{
    if (a[i].null || (a[i].kind != SL_FLOAT64 && a[i].kind != SL_INT64))
        return api->error_set(err, SL_EINVAL, "argument %d (%s) must be a number", i + 1, what);
    if (!(a[i].f >= lo && a[i].f <= hi))
        return api->error_set(err, SL_EINVAL, "argument %d (%s) must be between %g and %g", i + 1,
                              what, lo, hi);
    *out = a[i].f;
    return 0;
}

static int geo_distance(void *ctx, const struct sl_scalar *a, int n, struct sl_scalar *ret,
                        struct sl_buf *out, struct sl_error *err)
{
    double la1, lo1, la2, lo2;
    if (n != 4)
        return api->error_set(err, SL_EINVAL, "takes 4 arguments (lat1, lon1, lat2, lon2)");
    int rc = num_arg(a, 0, "lat1", -90, 90, &la1, err);
    if (!rc)
        rc = num_arg(a, 1, "lon1", -180, 180, &lo1, err);
    if (!rc)
        rc = num_arg(a, 2, "lat2", -90, 90, &la2, err);
    if (!rc)
        rc = num_arg(a, 3, "lon2", -180, 180, &lo2, err);
    if (rc)
        return rc;
    const double r = M_PI / 180.0;
    double dphi = (la2 - la1) * r, dl = (lo2 - lo1) * r;
    double h = sin(dphi / 2) * sin(dphi / 2) + cos(la1 * r) * cos(la2 * r) * sin(dl / 2) * sin(dl / 2);
    if (h > 1)
        h = 1;
    ret->kind = SL_FLOAT64;
    ret->f = 2 * EARTH_KM * asin(sqrt(h));
    return 0;
}

static int geo_cell(void *ctx, const struct sl_scalar *a, int n, struct sl_scalar *ret,
                    struct sl_buf *out, struct sl_error *err)
{
    double la, lo, size;
    if (n != 3)
        return api->error_set(err, SL_EINVAL, "takes 3 arguments (lat, lon, size_deg)");
    int rc = num_arg(a, 0, "lat", -90, 90, &la, err);
    if (!rc)
        rc = num_arg(a, 1, "lon", -180, 180, &lo, err);
    if (!rc)
        rc = num_arg(a, 2, "size_deg", 1e-6, 180, &size, err);
    if (rc)
        return rc;
    api->buf_printf(out, "%lld:%lld", (long long)floor(la / size), (long long)floor(lo / size));
    ret->kind = SL_STRING;
    return 0;
}

static const struct sl_lua_fn fns[] = {
    {"distance", geo_distance},
    {"cell", geo_cell},
    {NULL, NULL},
};

static const struct sl_lua_lib lib = {
    .abi_version = SL_LUA_LIB_ABI_VERSION,
    .struct_size = sizeof(struct sl_lua_lib),
    .table = "geo",
    .fns = fns,
};

static int plugin_init(const struct sl_plugin_api *a, const struct sl_plugin_handle *self,
                       void **ctx, struct sl_error *err)
{
    api = a;
    return 0;
}

static const struct sl_plugin plugin = {
    .abi_major = SL_PLUGIN_ABI_MAJOR,
    .abi_minor = SL_PLUGIN_ABI_MINOR,
    .struct_size = sizeof(struct sl_plugin),
    .kind = SL_PLUGIN_LUA,
    .name = "geo",
    .version = "1.0.0",
    .description = "geo.distance (haversine km) and geo.cell (grid cell key) for transformations",
    .cb_init = plugin_init,
    .ops = &lib,
};

SL_PLUGIN_EXPORT const struct sl_plugin *SL_PLUGIN_ENTRY(void)
{
    return &plugin;
}
