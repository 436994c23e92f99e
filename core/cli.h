/* The command-line client: subcommands that talk to a running server over HTTP. */
#ifndef SL_CLI_H
#define SL_CLI_H

/* Runs `sluice <cmd> ...` for every subcommand except serve. argv[0] is the subcommand.
 * Returns the process exit status (0 ok, 1 failure, 2 usage). Main thread. */
int sl_cli_main(int argc, char **argv);

/* Prints the top-level usage. */
void sl_cli_usage(void);

#endif
