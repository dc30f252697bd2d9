import { pageId } from "@/components/shell/page-id";
import { EvaluationReport } from "@/components/evaluation/evaluation-report";

export const metadata = { title: "Dataset quality report" };

// The report of a folder or hub dataset's scoring: there is no dataset in Gantry to file it under.
export default async function Page({ params }: { params: Promise<{ evaluationId: string }> }) {
  const { evaluationId } = await params;
  return <EvaluationReport evaluationId={pageId(evaluationId)} />;
}
