/** The dataset format's versions, apart from its Arrow schema (src/schema/dataset.ts) so that --help loads no Arrow. */
/** the version `kd dataset build` writes by default */
export const DATASET_FORMAT_VERSION = 2;
/** every version this kd reads */
export const DATASET_FORMAT_VERSIONS: readonly number[] = [1, 2];
export type DatasetVersion = 1 | 2;
