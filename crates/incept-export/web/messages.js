// What the page's modules share to say what went wrong.

export const EXPORT_AGAIN =
  "the page's folder is incomplete or damaged; export it again with `incept export RUN --web DIR`";
export const MB = 1e6;

/** An error whose message is complete as it is: shown without a prefix. */
export class PageError extends Error {}

export function messageOf(error) {
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

export function megabytes(bytes) {
  return `${(bytes / MB).toFixed(1)} MB`;
}
