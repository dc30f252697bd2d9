import { TextField } from "@/components/ui/field";

/**
 * The fields of a test vector, read by readTestVectorFields: one JSON file, or .npy files for
 * the inputs and (optionally) the expected outputs, and a tolerance. A fragment, so the form
 * around it lays them out in its own grid.
 */
export function TestVectorFields() {
  return (
    <>
      <TextField label="Tolerance" name="tolerance" type="number" step="any" min={0} placeholder="report only" hint="A larger max |diff| fails the test vector, not the version" />
      <div className="text-sm">
        <label className="block">
          <span className="mb-1.5 block font-medium">Test vector (JSON)</span>
          <input type="file" name="vector" accept=".json,application/json" className="text-sm" />
        </label>
        <p className="mt-1 text-xs text-zinc-500">{'{"inputs": {"x": [[…]]}, "outputs": {…}}, or an Open Inference Protocol request body'}</p>
      </div>
      <label className="block text-sm">
        <span className="mb-1.5 block font-medium">Or inputs (.npy, named after each input)</span>
        <input type="file" name="inputs" accept=".npy" multiple className="text-sm" />
      </label>
      <div className="text-sm">
        <label className="block">
          <span className="mb-1.5 block font-medium">And expected outputs (.npy)</span>
          <input type="file" name="outputs" accept=".npy" multiple className="text-sm" />
        </label>
        <p className="mt-1 text-xs text-zinc-500">Optional: without them the vector shows the model runs on those inputs</p>
      </div>
    </>
  );
}
