/** The environment variables `kd run` sets for the kd processes it starts (its stages and services). */

/** "1": stop as if sent SIGTERM when the parent goes away (src/cli/child.ts). */
export const EXIT_WITH_PARENT_ENV = 'KD_EXIT_WITH_PARENT';

/** The file descriptor of a stage's progress pipe (src/core/progress.ts). */
export const PROGRESS_FD_ENV = 'KD_PROGRESS_FD';
