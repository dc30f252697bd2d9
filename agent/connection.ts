import { setTimeout as sleep } from "node:timers/promises";
import { agentStreamEventSchema, type AgentMessage, type AgentStreamEvent, type JointSample } from "../server/hardware/hardware.schemas";
import type { CommandRegistry } from "./commands";
import type { AgentConfig } from "./config";
import { CommandJournal, type Outcome } from "./command-journal";
import { collectHostFacts } from "./host-facts";
import { portalFetch, portalMessage, portalUrl } from "./portal";
import { noAnswer, PortalError, retryDelayMs } from "./retry";
import { SampleBatcher } from "./sample-batcher";

// `gantry-agent connect`: the agent dials out to the portal (so it works behind NAT) and holds
// one server-sent-events stream on which the portal sends commands; answers go back as POSTs.
// The portal's route handlers cannot hold WebSockets, and a stream delivers a command the
// moment it is queued. When the stream drops, the agent dials again after a jittered, growing
// wait; commands it was running carry on and their results are posted when the portal is back.
//
// Commands are idempotent by id: the agent remembers what it answered for a while, and a
// command sent again (after a reconnect the portal resends whatever had not ended) is answered
// with the same outcome, or not run twice if it is still running. The memory is a file
// (command-journal.ts), so an agent restarted mid-command says it was interrupted rather than
// running it again from the start.
//
// Joint samples a command emits are live data: batched, posted once without retries, the
// oldest dropped when the portal is slow (sample-batcher.ts).

type CommandEvent = Extract<AgentStreamEvent, { type: "command" }>;
/** Before the first heartbeat interval is known: how long a silent stream is trusted. */
const FIRST_SILENCE_MS = 60_000;

export interface ConnectOptions {
  config: Pick<AgentConfig, "portal" | "token">;
  name: string;
  version: string;
  registry: CommandRegistry;
  /** Keep dialling for ever, whatever the portal answers (a service); otherwise give up after `retries` failures in a row or at a refusal. */
  isService: boolean;
  retries: number;
  log: (line: string) => void;
  signal: AbortSignal;
  /** Where the commands it started and their outcomes are kept across restarts; null keeps them in memory. */
  journalFile: string | null;
}

export class AgentConnection {
  private agentId: string | null = null;
  private readonly journal: CommandJournal;
  private readonly running = new Set<string>();
  /** Aborts a running command when the portal says it was cancelled. */
  private readonly cancels = new Map<string, AbortController>();

  constructor(private readonly opts: ConnectOptions) {
    this.journal = new CommandJournal(opts.journalFile);
  }

  /** Connects and stays connected until `signal` is aborted (or, not as a service, until it cannot). */
  async run(): Promise<void> {
    const { log, signal } = this.opts;
    let failures = 0;
    while (!signal.aborted) {
      let reason: string;
      try {
        const wasConnected = await this.holdStream();
        if (signal.aborted) return;
        if (wasConnected) failures = 0;
        reason = "the portal closed the connection";
      } catch (error) {
        if (signal.aborted) return;
        const isRefusal = error instanceof PortalError && error.status >= 400 && error.status < 500;
        if (isRefusal && !this.opts.isService) throw error;
        reason = error instanceof PortalError ? error.reason : (error as Error).message;
      }
      failures++;
      if (!this.opts.isService && failures > this.opts.retries) throw new PortalError(`Lost the portal at ${this.opts.config.portal} and could not reconnect: ${reason} (gave up after ${failures} tries; run with --service to keep trying)`, 0, reason);
      const wait = retryDelayMs(failures);
      log(`Disconnected: ${reason}; connecting again in ${(wait / 1000).toFixed(1)} s`);
      await sleep(wait, undefined, { signal }).catch(() => {});
    }
  }

  /** One stream, from dialling to its end. True if the portal said hello (the connection was made). */
  private async holdStream(): Promise<boolean> {
    const { config, name, version, signal, log } = this.opts;
    const url = new URL(portalUrl(config, "api/agents/connect"));
    url.searchParams.set("name", name);
    url.searchParams.set("version", version);
    // A stream that goes silent (a dead network path sends no reset) is given up after three
    // missed heartbeats, so the agent dials again instead of waiting for ever.
    const silence = new AbortController();
    let silenceMs = FIRST_SILENCE_MS;
    let timer = setTimeout(() => silence.abort(), silenceMs);
    const heard = () => {
      clearTimeout(timer);
      timer = setTimeout(() => silence.abort(), silenceMs);
    };
    let isConnected = false;
    try {
      let response: Response;
      try {
        response = await fetch(url, { headers: { authorization: `Bearer ${config.token}`, accept: "text/event-stream" }, signal: AbortSignal.any([signal, silence.signal]) });
      } catch (error) {
        throw new PortalError(`Cannot reach the portal at ${config.portal}`, 0, noAnswer(error, silenceMs).reason);
      }
      if (!response.ok || !response.body) {
        const message = portalMessage(await response.text().catch(() => ""), response.statusText);
        const hint = response.status === 401 ? " (run `gantry-agent login` with a valid token)" : "";
        throw new PortalError(`The portal refused the connection (HTTP ${response.status}): ${message}${hint}`, response.status, `the portal answered HTTP ${response.status} (${message})`);
      }
      const decoder = new TextDecoder();
      let buffer = "";
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return isConnected;
          heard();
          buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
          for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: ?(.*)$/m.exec(block)?.[1];
            const data = [...block.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join("\n");
            if (event === "end") return isConnected;
            if (event === "error") throw new PortalError(`The portal ended the connection: ${portalMessage(data, "an error")}`, 500, `the portal ended the stream (${portalMessage(data, "an error")})`);
            if (event !== "agent" || !data) continue;
            const parsed = agentStreamEventSchema.safeParse(JSON.parse(data));
            if (!parsed.success) {
              log(`Ignored a message from the portal this agent does not understand (update gantry-agent?): ${data.slice(0, 200)}`);
              continue;
            }
            if (parsed.data.type === "hello") {
              isConnected = true;
              this.agentId = parsed.data.agentId;
              silenceMs = 3 * parsed.data.heartbeatMs;
              heard();
              log(`Connected to ${config.portal} as ${name}; waiting for commands`);
              void this.sendFacts();
            } else if (parsed.data.type === "cancel") {
              this.cancels.get(parsed.data.id)?.abort(new DOMException("cancelled", "AbortError"));
            } else {
              void this.handleCommand(parsed.data);
            }
          }
        }
      } catch (error) {
        if (error instanceof PortalError) throw error;
        if (signal.aborted) return isConnected;
        throw new PortalError("The connection to the portal broke", 0, silence.signal.aborted ? `no word from the portal for ${Math.round(silenceMs / 1000)} s` : noAnswer(error, silenceMs).reason);
      } finally {
        reader.cancel().catch(() => {});
      }
    } finally {
      clearTimeout(timer);
    }
  }

  private async post(message: AgentMessage, what: string): Promise<void> {
    await portalFetch(this.opts.config, "api/agents/messages", { method: "POST", body: message, retry: { what, retries: this.opts.retries, log: this.opts.log } });
  }

  /** One try: a batch that does not arrive is replaced by the next. */
  private async postSamples(commandId: string, samples: JointSample[]): Promise<void> {
    const agentId = this.agentId;
    if (!agentId) return;
    await portalFetch(this.opts.config, "api/agents/messages", { method: "POST", body: { type: "samples", agentId, commandId, samples } satisfies AgentMessage });
  }

  private async sendFacts(): Promise<void> {
    const agentId = this.agentId;
    if (!agentId) return;
    try {
      const facts = await collectHostFacts(this.opts.version);
      await this.post({ type: "facts", agentId, facts }, "sending host facts");
    } catch (error) {
      this.opts.log(`Could not send host facts: ${(error as Error).message}`);
    }
  }

  private async handleCommand(command: CommandEvent): Promise<void> {
    const agentId = this.agentId!;
    const ref = { agentId, commandId: command.id };
    const known = this.journal.outcomeOf(command.id);
    if (known) return this.postOutcome(command, known);
    // Sent again while it runs (a reconnect): its result goes out when it finishes.
    if (this.running.has(command.id)) return;
    // Started by this agent before it was restarted: whatever it had done is not known to be whole.
    if (this.journal.wasInterrupted(command.id)) {
      const interrupted: Outcome = { ok: false, error: `The agent was restarted while it ran ${command.kind}, so it was not finished; run it again` };
      this.journal.finished(command.id, interrupted);
      return this.postOutcome(command, interrupted);
    }
    this.running.add(command.id);
    this.journal.started(command.id);
    const left = Date.parse(command.deadline) - Date.now();
    const cancel = new AbortController();
    this.cancels.set(command.id, cancel);
    const signal = AbortSignal.any([this.opts.signal, cancel.signal, AbortSignal.timeout(Math.max(0, left))]);
    let outcome: Outcome;
    const samples = new SampleBatcher((batch) => this.postSamples(command.id, batch));
    let logs: Promise<void> = Promise.resolve();
    try {
      this.opts.log(`Running ${command.kind} (${command.id})`);
      void this.post({ type: "progress", ...ref, progress: null, step: null }, `${command.kind}: reporting start`).catch(() => {});
      const progress = (fraction: number | null, step: string | null) => void this.post({ type: "progress", ...ref, progress: fraction, step: step?.slice(0, 200) ?? null }, `${command.kind}: reporting progress`).catch(() => {});
      const emit = (sample: JointSample) => samples.push(sample);
      // A recipe's log lines go out in order, one post after another.
      // Batches stay well under the portal's 256 KB message limit, however wide the characters.
      const log = (step: string, lines: string[]) => {
        let batch: string[] = [];
        let bytes = 0;
        const send = (ls: string[]) => {
          logs = logs.then(() => this.post({ type: "log", ...ref, step: step.slice(0, 64), lines: ls }, `${command.kind}: sending its log`).catch(() => {}));
        };
        for (const line of lines) {
          const size = Buffer.byteLength(JSON.stringify(line));
          if (batch.length && (bytes + size > 128 * 1024 || batch.length >= 200)) {
            send(batch);
            batch = [];
            bytes = 0;
          }
          batch.push(line);
          bytes += size;
        }
        if (batch.length) send(batch);
      };
      const result = await this.opts.registry.run(command.kind, command.input, { progress, emit, log, signal });
      // Through JSON now, so what is remembered is exactly what the portal stores.
      outcome = { ok: true, result: JSON.parse(JSON.stringify(result ?? null)) as Extract<Outcome, { ok: true }>["result"] };
    } catch (error) {
      // A handler's own refusal stands even after the deadline; only the abort itself is reworded.
      const isAbort = signal.aborted && (error === signal.reason || ["AbortError", "TimeoutError"].includes((error as Error)?.name));
      const why = cancel.signal.aborted ? `${command.kind} was cancelled` : this.opts.signal.aborted ? null : `${command.kind} did not finish before its deadline`;
      const message = isAbort && why ? why : (error as Error).message || String(error);
      outcome = { ok: false, error: message.slice(0, 2000) };
    } finally {
      this.running.delete(command.id);
      this.cancels.delete(command.id);
    }
    // The last readings and log lines go out before the result, which ends the command in the portal.
    await samples.close();
    await logs;
    this.journal.finished(command.id, outcome);
    await this.postOutcome(command, outcome);
  }

  private async postOutcome(command: CommandEvent, outcome: Outcome): Promise<void> {
    try {
      await this.post({ type: "result", agentId: this.agentId!, commandId: command.id, outcome }, `${command.kind}: sending the result`);
      this.opts.log(`${command.kind} (${command.id}) ${outcome.ok ? "succeeded" : `failed: ${outcome.error}`}`);
    } catch (error) {
      // Kept in the journal: when the portal resends the command after a reconnect, it gets this answer.
      this.opts.log(`${command.kind} (${command.id}): could not send the result yet (${(error as Error).message}); it is kept for when the portal asks again`);
    }
  }
}
