// The deploy job's six steps, in order, with where each starts on the progress bar. The job
// reports them by label and the endpoint page lists them by the same labels.

export const DEPLOY_STEPS = [
  { label: "Validating", at: 0.05 },
  { label: "Fetching the model file", at: 0.2 },
  { label: "Loading with onnxruntime", at: 0.4 },
  { label: "Warming up", at: 0.6 },
  { label: "Starting to serve", at: 0.8 },
  { label: "Ready", at: 1 },
] as const;

export type DeployStep = (typeof DEPLOY_STEPS)[number];
