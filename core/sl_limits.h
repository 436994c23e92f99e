/* Limits of a feature repository's definitions, named once. The registry refuses a definition
 * past one of them at plan and apply, naming its file and line; code past the registry may
 * rely on them (fixed-size arrays on the request path are sized by these names).
 * (Not "limits.h": with -Icore that name would hide the C library's <limits.h>.) */
#ifndef SL_SL_LIMITS_H
#define SL_SL_LIMITS_H

#define SL_MAX_JOIN_KEYS 16        /* join keys of one feature view */
#define SL_MAX_VIEW_FEATURES 256   /* features of one feature view */
#define SL_MAX_REALTIME_INPUTS 16  /* feature views and request sources of one realtime view */
#define SL_MAX_NAME 64             /* bytes of a workspace name */

#endif
