import { AppError } from "../errors";
import { AGENT_MESSAGE_MAX_BYTES, agentMessageSchema, type AgentMessage } from "../hardware/hardware.schemas";
import { parseJsonText, readBodyText } from "./json-body";
import { refuseNulCharacters } from "../security/nul-characters";

/**
 * An agent's message, refused (413) past AGENT_MESSAGE_MAX_BYTES before it is all read, and
 * (400) when it is not JSON or not one of the messages the agent sends, naming each bad field.
 */
export async function parseAgentMessage(request: Request): Promise<AgentMessage> {
  const text = await readBodyText(request, AGENT_MESSAGE_MAX_BYTES, "limit for an agent's message");
  const json = parseJsonText(text, "The agent's message");
  refuseNulCharacters(json, "The agent's message");
  const parsed = agentMessageSchema.safeParse(json);
  if (!parsed.success) throw new AppError("BAD_REQUEST", `The agent's message is not valid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "body"} ${i.message}`).join("; ")}`);
  return parsed.data;
}
