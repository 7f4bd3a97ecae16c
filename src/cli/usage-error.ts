/** Bad input on the command line or in a plan file: `troupe` prints it and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
