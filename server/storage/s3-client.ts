import { S3Client, S3ServiceException } from "@aws-sdk/client-s3";

// One way to build an S3 client for any S3-compatible service (AWS, R2, Garage, MinIO, Swift's
// S3 gateway): request checksums only where the service requires them (Swift answers
// aws-chunked bodies with 501), and the service's own words for a person when it refuses.

export interface S3ClientSettings {
  endpoint: string;
  region: string;
  forcePathStyle: boolean;
  accessKeyId: string;
  secretAccessKey: string;
}

/** A bucket of an S3-compatible service, and this instance's folder of it. */
export interface S3BucketSettings extends S3ClientSettings {
  bucket: string;
  /** S3_PREFIX: this instance's folder of the bucket ("" or names ending in /). */
  prefix: string;
}

export function createS3Client(settings: S3ClientSettings): S3Client {
  return new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: settings.forcePathStyle,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

export const isS3Missing = (error: unknown) => error instanceof S3ServiceException && (error.$metadata.httpStatusCode === 404 || error.name === "NotFound" || error.name === "NoSuchKey");

/** A multipart upload (or its object) the service no longer has. */
export const isS3UploadGone = (error: unknown) => isS3Missing(error) || (error instanceof S3ServiceException && error.name === "NoSuchUpload");

/** The service's own words, shortened, for a message a person can act on. */
export function s3ServiceMessage(error: unknown): string {
  if (error instanceof S3ServiceException) return `${error.name} (HTTP ${error.$metadata.httpStatusCode ?? "?"})${error.message && error.message !== "UnknownError" ? `: ${error.message}` : ""}`;
  return (error as Error)?.message ?? String(error);
}
