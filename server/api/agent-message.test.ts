import { describe, expect, it } from "vitest";
import { parseAgentMessage } from "./agent-message";

const post = (message: unknown) => new Request("http://portal.test/api/agents/messages", { method: "POST", body: JSON.stringify(message) });
const samples = (t: number) => ({
  type: "samples",
  agentId: "7d3f6c1e-2a4b-4c5d-8e9f-0a1b2c3d4e5f",
  commandId: "0f1e2d3c-4b5a-4697-8877-665544332211",
  samples: [{ t, raw: [2048, 2048, 2048, 2048, 2048, 2048], values: [0, 0, 0, 0, 0, 0] }],
});

describe("an agent's message", () => {
  it("takes a batch of joint readings timed by the agent's clock", async () => {
    expect(await parseAgentMessage(post(samples(1_700_000_000_000)))).toMatchObject({ type: "samples", samples: [{ t: 1_700_000_000_000 }] });
  });

  it("refuses a reading whose time no date can hold, naming it", async () => {
    for (const t of [1e20, -5]) {
      await expect(parseAgentMessage(post(samples(t)))).rejects.toMatchObject({ code: "BAD_REQUEST", message: expect.stringMatching(/samples\.0\.t/) });
    }
  });
});
