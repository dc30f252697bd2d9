"use client";

import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { SelectField } from "@/components/ui/field";
import { useTRPC } from "@/components/trpc";

/** A model, then one of its ready versions. */
export function VersionPicker({ onChange }: { onChange: (versionId: string | null) => void }) {
  const trpc = useTRPC();
  const models = useQuery(trpc.models.list.queryOptions());
  const [modelId, setModelId] = useState("");
  const model = useQuery({ ...trpc.models.get.queryOptions({ modelId }), enabled: Boolean(modelId) });
  const ready = model.data?.versions.filter((v) => v.status === "ready") ?? [];
  return (
    <div className="flex items-end gap-2">
      <SelectField
        label="Model"
        value={modelId}
        onChange={(e) => {
          setModelId(e.target.value);
          onChange(null);
        }}
        options={[{ value: "", label: "Choose a model" }, ...(models.data ?? []).map((m) => ({ value: m.id, label: m.name }))]}
      />
      <SelectField
        label="Version"
        disabled={!modelId}
        defaultValue=""
        key={modelId}
        onChange={(e) => onChange(e.target.value || null)}
        options={[{ value: "", label: ready.length ? "Choose a version" : "No ready version" }, ...ready.map((v) => ({ value: v.id, label: `v${v.number}` }))]}
      />
    </div>
  );
}
