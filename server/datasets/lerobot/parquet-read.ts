import { asyncBufferFromFile, parquetReadObjects, type Compressors } from "hyparquet";
import { decompressBrotli, decompressLz4, decompressLz4Raw, decompressZstd, gunzip } from "hyparquet-compressors";

// Parquet as other tools write it: LeRobot (pyarrow) writes SNAPPY, which hyparquet reads itself;
// a dataset re-saved with polars is ZSTD, Spark and pandas options give GZIP, BROTLI or LZ4.

const compressors: Compressors = {
  GZIP: (input, length) => gunzip(input, new Uint8Array(length)),
  BROTLI: decompressBrotli,
  ZSTD: (input) => decompressZstd(input),
  LZ4: decompressLz4,
  LZ4_RAW: decompressLz4Raw,
};

/** Every row of a parquet file (only `columns`, when given), whichever codec wrote it. */
export async function readParquetFile(file: string, columns?: string[]): Promise<Record<string, unknown>[]> {
  return (await parquetReadObjects({ file: await asyncBufferFromFile(file), compressors, ...(columns ? { columns } : {}) })) as Record<string, unknown>[];
}
