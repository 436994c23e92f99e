/* The data lifecycle (DESIGN §8): deleting what a removed, redefined or deleted view stored
 * (a resumable job), and the format version of the data dir. */
#ifndef SL_LIFECYCLE_H
#define SL_LIFECYCLE_H

struct sl_buf;
struct sl_error;
struct sl_job;
struct sl_jobs;
struct sl_node;
struct sl_ws;

/* The data dir format this binary writes. 1 is a dir without a FORMAT file (releases before
 * versioned view ids: offline directories named by the view alone); 2 names them
 * `<view>@<storage prefix>`. */
#define SL_DATA_FORMAT 2

/* Before anything under data_dir is opened: SL_EINVAL with a one-line message when
 * `<data_dir>/FORMAT` names a format newer than SL_DATA_FORMAT (or is unreadable), else 0
 * and *found set to the format on disk (1 when there is no FORMAT file). */
int sl_lifecycle_check_format(const char *data_dir, int *found, struct sl_error *err);

/* After the registry is loaded, before the writer starts: upgrades a data dir of an older
 * format in place (renames each current view's offline directory to its incarnation name;
 * directories of views no longer defined are left for deletion) and writes FORMAT. Returns 0
 * or SL_EIO with err. Main thread. */
int sl_lifecycle_upgrade(struct sl_node *n, int found, struct sl_error *err);

/* Deletes workspace `name`: its definitions and roles now, its data (a live one's) by one
 * delete job per view (ids appended to ids as JSON strings, comma-separated). A workspace re-created under
 * the same name gets a new epoch, so it starts empty even before the jobs finish. Returns
 * 0, SL_ENOTFOUND or SL_ESTORE with err. Any thread but the writer's. */
int sl_lifecycle_delete_workspace(struct sl_node *n, const char *name, struct sl_buf *ids,
                                  struct sl_error *err);

/* Adds what a plan of replacing cur by next costs to plan (the JSON array of
 * sl_registry_plan, rewritten in place): each feature_view entry that updates or deletes a
 * view gets "history": {"carriedOver": bool, "onlineKeys": "N", "offlineBytes": "M"} — the
 * state stored under the view's current id, which a new id (redefinition) or a delete
 * leaves behind for a delete job. Returns 1 when some state would be lost, else 0. Any
 * thread (reads the store and the offline directories). */
int sl_lifecycle_plan_costs(struct sl_node *n, const struct sl_ws *cur, const struct sl_ws *next,
                            struct sl_buf *plan);

/* Retention (runner thread): deletes online keys (V, G, F) and offline directories that
 * belong to no feature view of the registry — left by versions that did not delete, by a
 * cancelled delete job, or by commits that raced a delete. Candidates are found first and
 * checked against the registry read afterwards, and ids are never reused, so state of a
 * view applied meanwhile is never touched. Counts go to n->orphan_keys / orphan_bytes. */
void sl_lifecycle_reclaim_orphans(struct sl_node *n);

/* Writes a consistent copy of the data dir into dest (absolute; created, or an existing empty
 * directory) while the server runs: the online store from a snapshot taken on the writer
 * thread between two groups, together with the offline directories' durable state (sealed
 * segments hard-linked, active ones copied up to their durable length), so the copy holds
 * exactly the writes acknowledged before the backup began. `sluice serve --data-dir dest`
 * serves it. Appends {"to","onlineKeys","offlineDirectories","offlineBytes"} to out. Returns
 * 0, SL_EINVAL, SL_EEXIST or an I/O status with err. Any thread but the writer's; blocks. */
int sl_lifecycle_backup(struct sl_node *n, const char *dest, struct sl_buf *out,
                        struct sl_error *err);

/* The executor of a delete job (runner thread): removes the online keys of the view id (rows
 * V, aggregation state G, loaded-file markers F), its offline directory, and the records of
 * its finished jobs, in steps of delete-chunk-keys keys, each committed with the job's
 * checkpoint (the last key deleted) so a restart resumes where it stopped. Returns 0,
 * SL_EBUSY when cancelled or stopping (resumable), or a negative status with err (e.g. the id
 * is in use by a current definition: nothing is deleted). */
int sl_lifecycle_delete_run(struct sl_node *n, struct sl_jobs *j, struct sl_job *job,
                            struct sl_error *err);

#endif
