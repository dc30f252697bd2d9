import { pageId } from "@/components/shell/page-id";
import { EvaluationReport } from "@/components/evaluation/evaluation-report";

export const metadata = { title: "Dataset quality report" };

export default async function Page({ params }: { params: Promise<{ id: string; evaluationId: string }> }) {
  const { evaluationId } = await params;
  return <EvaluationReport evaluationId={pageId(evaluationId)} />;
}
