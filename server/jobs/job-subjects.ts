import type { Db } from "../db";

// What a job is about, in a few words ("garbage v3", "lab/pick episode 4", "arm-b"), read from
// the ids its payload names: eight "Validate model" rows become eight models a person can tell
// apart. One query per kind of thing for a whole page of jobs.

type Payload = Record<string, unknown>;
const idOf = (p: Payload, key: string) => (typeof p[key] === "string" ? (p[key] as string) : null);

export async function describeJobSubjects(db: Db, jobs: { id: string; payload: unknown }[]): Promise<Map<string, string>> {
  const payloads = jobs.map((j) => ({ id: j.id, p: (j.payload ?? {}) as Payload }));
  const ids = (key: string) => [...new Set(payloads.map(({ p }) => idOf(p, key)).filter((x): x is string => !!x))];
  const [versions, episodes, datasets, targets, endpoints, runs] = await Promise.all([
    ids("versionId").length ? db.modelVersion.findMany({ where: { id: { in: ids("versionId") } }, select: { id: true, number: true, model: { select: { name: true } } } }) : [],
    ids("episodeId").length ? db.episode.findMany({ where: { id: { in: ids("episodeId") } }, select: { id: true, number: true, dataset: { select: { repoId: true } } } }) : [],
    ids("datasetId").length ? db.dataset.findMany({ where: { id: { in: ids("datasetId") } }, select: { id: true, repoId: true } }) : [],
    ids("targetId").length ? db.deploymentTarget.findMany({ where: { id: { in: ids("targetId") } }, select: { id: true, device: { select: { name: true } } } }) : [],
    ids("endpointId").length ? db.endpoint.findMany({ where: { id: { in: ids("endpointId") } }, select: { id: true, name: true } }) : [],
    ids("runId").length ? db.trainingRun.findMany({ where: { id: { in: ids("runId") } }, select: { id: true, name: true } }) : [],
  ]);
  const names = new Map<string, string>([
    ...versions.map((v) => [v.id, `${v.model.name} v${v.number}`] as [string, string]),
    ...episodes.map((e) => [e.id, `${e.dataset.repoId} episode ${e.number}`] as [string, string]),
    ...datasets.map((d) => [d.id, d.repoId] as [string, string]),
    ...targets.map((t) => [t.id, t.device.name] as [string, string]),
    ...endpoints.map((e) => [e.id, e.name] as [string, string]),
    ...runs.map((r) => [r.id, r.name] as [string, string]),
  ]);
  const result = new Map<string, string>();
  for (const { id, p } of payloads) {
    for (const key of ["versionId", "episodeId", "datasetId", "targetId", "endpointId", "runId"]) {
      const name = idOf(p, key) && names.get(idOf(p, key)!);
      if (name) {
        result.set(id, name);
        break;
      }
    }
  }
  return result;
}
