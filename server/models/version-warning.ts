// What an endpoint or a device running a version should say once a later validation found that
// version invalid (another onnxruntime, other dimensions): it keeps running it, and the people
// looking at it must know. Only "invalid" is a finding about the model; a validation that was
// cancelled or timed out ("failed") says nothing about it, and one under way is not finished.

/** The warning for a version in use, or null when its last validation did not find it invalid. */
export function invalidVersionWarning(version: { number: number; status: string; error: string | null; model: { name: string } }): string | null {
  if (version.status !== "invalid") return null;
  return `Version ${version.number} of ${version.model.name} is invalid since its last validation: ${version.error ?? "it did not pass"}`;
}
