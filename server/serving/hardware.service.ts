import os from "node:os";
import { listSupportedBackends } from "onnxruntime-node";
import type { ServingHardware } from "./endpoints.schemas";

// What the wizard's hardware step can offer: this machine's cores, and the execution
// providers onnxruntime reports. The model server runs its sessions on the CPU; a provider
// that needs a GPU library is listed so people see why it is not offered.

const notes: Record<string, string> = {
  cpu: "Runs on this machine's cores; the threads setting is per session.",
  cuda: "Needs an NVIDIA GPU with CUDA libraries on the model server's host.",
  tensorrt: "Needs an NVIDIA GPU with TensorRT on the model server's host.",
  webgpu: "Needs a GPU reachable through WebGPU.",
  dml: "Windows only (DirectML).",
  coreml: "macOS only (Core ML).",
};

export function servingHardware(): ServingHardware {
  let reported: string[] = ["cpu"];
  try {
    reported = listSupportedBackends().map((b) => b.name);
  } catch {
    // An older binding without the list: the CPU provider is always there.
  }
  const names = ["cpu", ...reported.filter((n) => n !== "cpu")];
  return {
    cpus: os.availableParallelism(),
    providers: names.map((name) => ({
      name,
      available: name === "cpu",
      note: name === "cpu" ? notes.cpu : `${notes[name] ?? "Reported by onnxruntime."} Gantry's model server does not use it yet.`,
    })),
  };
}
