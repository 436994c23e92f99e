/* The kinds of mutation an ingest request hands the writer thread (its commit), named
 * once. Mutations live in memory only; their kind is never stored. The values keep the
 * characters they had: a commit's mutations are sorted by kind first (ingest.c cmp_mut). */
#ifndef SL_MUTATION_H
#define SL_MUTATION_H

enum sl_mutation_kind {
    SL_MUT_ROW = 'A',      /* ingest.c: an attribute row, kept unless the stored one is newer */
    SL_MUT_OFFLINE = 'O',  /* ingest.c: a record for the offline store */
    SL_MUT_MERGE = 'M',    /* tiles.c: merge the value's states into the stored ones */
    SL_MUT_LIFETIME = 'L', /* tiles.c: value is one encoded event for the lifetime states */
    SL_MUT_PUT = 'P',      /* tiles.c: plain put (event log) */
};

#endif
