import pg from "pg";
import type { Db } from "../db";
import { EVENTS_CHANNEL, eventNotificationSchema, type EventNotification } from "./catalog";
import type { JobEventDto } from "./jobs.schemas";
import { notifiedJobEventDto, toJobEventDto } from "./jobs.queries";

/**
 * The shortest time between two hand-outs of new events. Each wakes every subscriber it has
 * events for (a write to each of their streams): at a few hundred events a second and hundreds
 * of subscribers, handing each notification on by itself would wake every subscriber per event.
 * 50 ms rather than 20 ms: under bench/scale.ts's load the web processes then use about half the
 * CPU, and delivery's tail is no longer (docs/operations.md).
 */
const FLUSH_EVERY_MS = 50;
/**
 * The latest events of each organisation someone follows, kept so a subscriber that fell behind
 * catches up from here rather than from the database: the same event objects every subscriber
 * was handed, whose frames are encoded once (api/sse.ts), instead of a query, rows decoded and
 * frames encoded for each subscriber — the work that, with hundreds of them behind at once, put
 * them further behind.
 */
const RECENT_PER_ORG = 4096;

export type RealtimeMessage = { kind: "event"; orgId: string; event: JobEventDto } | { kind: "resync" };
type Listener = (message: RealtimeMessage) => void;
/** A notification's payload on another channel; null after a reconnect, when some may have been missed. */
type ChannelListener = (payload: string | null) => void;

/** What a stream needs of the process's LISTEN hub to follow one channel: `RealtimeHub` is one. */
export interface ChannelSource {
  listen(channel: string, listener: ChannelListener): () => void;
  /** Resolves once every channel asked for is listened to: a notification sent after it arrives. */
  ensureConnected?(): Promise<void>;
}

/**
 * One LISTEN connection per process. A notification carries its event (or, for a long one, its
 * ids: the hub reads those rows once per batch), and the hub hands each to every subscriber of
 * that job or organisation. After a
 * reconnect it tells every subscriber to re-read from the database, so nothing is lost.
 */
export class RealtimeHub implements ChannelSource {
  private client: pg.Client | null = null;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly channels = new Map<string, Set<ChannelListener>>();
  /** Notified events not yet handed on, in commit order; those without `event` are read. */
  private pending: EventNotification[] = [];
  /** Per organisation with subscribers: its latest events, contiguous in orgSeq from `firstSeq`. */
  private readonly recent = new Map<string, { firstSeq: number; events: JobEventDto[] }>();
  private flushScheduled = false;
  private isStopped = false;
  private reconnectAttempt = 0;
  private connecting: Promise<void> | null = null;
  /** LISTENs sent on a connection already open, not yet confirmed. */
  private readonly listening = new Set<Promise<unknown>>();

  /** `jobEvents: false` for a process that only wants other channels (the model server). */
  constructor(private readonly opts: { url: string; db: Db; log?: (m: string) => void; jobEvents?: boolean }) {}

  subscribe(key: `job:${string}` | `org:${string}`, listener: Listener): () => void {
    void this.ensureConnected();
    let set = this.listeners.get(key);
    if (!set) this.listeners.set(key, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size > 0) return;
      this.listeners.delete(key);
      if (key.startsWith("org:")) this.recent.delete(key.slice(4));
    };
  }

  /**
   * The organisation's events after `afterOrgSeq`, at most `limit`, in order, from those this
   * process has read lately: exactly what the database holds after it (less any event still on
   * its way here), or null when they do not reach back that far (the caller reads the database).
   */
  recentOrgEvents(orgId: string, afterOrgSeq: number, limit: number): JobEventDto[] | null {
    const kept = this.recent.get(orgId);
    if (!kept || !this.isListening) return null;
    const from = afterOrgSeq + 1 - kept.firstSeq;
    if (from < 0 || from > kept.events.length) return null;
    return kept.events.slice(from, from + limit);
  }

  /** Keeps an event of an organisation someone follows. */
  private remember(orgId: string, event: JobEventDto): void {
    const kept = this.recent.get(orgId);
    // Not the next in line (a notification missed, or the first one seen): start again from it.
    if (!kept || event.orgSeq !== kept.firstSeq + kept.events.length) {
      this.recent.set(orgId, { firstSeq: event.orgSeq, events: [event] });
      return;
    }
    kept.events.push(event);
    if (kept.events.length >= 2 * RECENT_PER_ORG) {
      const drop = kept.events.length - RECENT_PER_ORG;
      kept.events.splice(0, drop);
      kept.firstSeq += drop;
    }
  }

  /**
   * Notifications on another channel, over the same connection. The listener gets each payload,
   * and null after a reconnect: notifications sent while the connection was down are lost.
   */
  listen(channel: string, listener: ChannelListener): () => void {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`Not a channel name: ${channel}`);
    let set = this.channels.get(channel);
    if (!set) {
      this.channels.set(channel, (set = new Set()));
      const client = this.client;
      if (client) {
        const sent: Promise<unknown> = client.query(`LISTEN ${channel}`).catch((error: Error) => this.handleDrop(client, error));
        this.listening.add(sent);
        void sent.finally(() => this.listening.delete(sent));
      }
    }
    set.add(listener);
    void this.ensureConnected();
    return () => set.delete(listener);
  }

  /** Whether notifications are arriving now; while not, a listener cannot trust what it cached. */
  get isListening(): boolean {
    return this.client !== null;
  }

  /** How many listeners `listen` holds on a channel now. */
  listenerCount(channel: string): number {
    return this.channels.get(channel)?.size ?? 0;
  }

  get subscriberCount(): number {
    let n = 0;
    for (const s of this.listeners.values()) n += s.size;
    return n;
  }

  /**
   * Resolves once every LISTEN asked for so far is in place: a notification sent after this
   * reaches its listener (subscribers replay from the database anyway).
   */
  async ensureConnected(): Promise<void> {
    if (!this.client && !this.isStopped) {
      this.connecting ??= this.connect().finally(() => (this.connecting = null));
      await this.connecting;
    }
    if (this.listening.size > 0) await Promise.all(this.listening);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.opts.url });
    client.on("notification", (n) => {
      const others = this.channels.get(n.channel);
      if (others) for (const listener of others) listener(n.payload ?? "");
      if (n.channel !== EVENTS_CHANNEL || !n.payload) return;
      const parsed = eventNotificationSchema.safeParse(JSON.parse(n.payload));
      if (parsed.success) this.enqueue(parsed.data);
    });
    client.on("error", (e) => this.handleDrop(client, e));
    client.on("end", () => this.handleDrop(client));
    try {
      await client.connect();
      if (this.opts.jobEvents !== false) await client.query(`LISTEN ${EVENTS_CHANNEL}`);
      for (const channel of this.channels.keys()) await client.query(`LISTEN ${channel}`);
      this.client = client;
      if (this.reconnectAttempt > 0) {
        this.broadcast({ kind: "resync" });
        for (const set of this.channels.values()) for (const listener of set) listener(null);
      }
      this.reconnectAttempt = 0;
    } catch (error) {
      client.removeAllListeners("end");
      await client.end().catch(() => {});
      this.scheduleReconnect(error as Error);
    }
  }

  private handleDrop(client: pg.Client, error?: Error): void {
    if (this.client !== client) return;
    this.client = null;
    client.removeAllListeners();
    client.on("error", () => {});
    void client.end().catch(() => {});
    if (!this.isStopped) this.scheduleReconnect(error);
  }

  private scheduleReconnect(error?: Error): void {
    if (this.isStopped) return;
    this.reconnectAttempt++;
    // Jittered exponential backoff, so many web processes do not reconnect in lockstep.
    const delay = Math.min(30_000, 250 * 2 ** Math.min(this.reconnectAttempt, 7)) * (0.5 + Math.random() / 2);
    this.opts.log?.(`Realtime connection lost${error ? ` (${error.message})` : ""}; reconnecting in ${Math.round(delay)} ms`);
    setTimeout(() => void this.ensureConnected(), delay).unref();
  }

  private flushing: Promise<void> = Promise.resolve();
  private lastFlushAt = -Infinity;

  private enqueue(notification: EventNotification): void {
    this.pending.push(notification);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // One read at a time, in order: batch 2 is never delivered before batch 1.
    const run = () => {
      this.flushing = this.flushing.then(() => this.flush());
    };
    // Under a stream of notifications, reads are at least FLUSH_EVERY_MS apart, so what arrives
    // meanwhile is read together and each subscriber is woken, and written to, once for all of
    // it; after a quiet spell the first notification is read at once.
    const wait = this.lastFlushAt + FLUSH_EVERY_MS - performance.now();
    if (wait <= 0) setImmediate(run);
    else setTimeout(run, wait);
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false;
    this.lastFlushAt = performance.now();
    const notified = this.pending;
    this.pending = [];
    if (this.listeners.size === 0) return;
    try {
      // Only the events too long to travel in their notification are read.
      const toRead = notified.filter((n) => !n.event);
      const read = toRead.length ? await this.opts.db.jobEvent.findMany({ where: { id: { in: toRead.map((n) => BigInt(n.id)) } } }) : [];
      const readById = new Map(read.map((row) => [row.id.toString(), toJobEventDto(row)]));
      // In the order they were notified, which is the order they committed in.
      for (const n of notified) {
        const event = n.event ? notifiedJobEventDto(n, n.event) : readById.get(n.id);
        if (!event) continue; // its job was deleted meanwhile
        const message: RealtimeMessage = { kind: "event", orgId: n.orgId, event };
        const orgKey = `org:${n.orgId}`;
        if (this.listeners.has(orgKey)) this.remember(n.orgId, event);
        this.deliver(`job:${n.jobId}`, message);
        this.deliver(orgKey, message);
      }
    } catch (error) {
      this.opts.log?.(`Could not read new job events: ${(error as Error).message}`);
      this.broadcast({ kind: "resync" });
    }
  }

  private deliver(key: string, message: RealtimeMessage): void {
    for (const listener of this.listeners.get(key) ?? []) listener(message);
  }

  private broadcast(message: RealtimeMessage): void {
    // Events may have been missed: what is kept is no longer known to be whole.
    if (message.kind === "resync") this.recent.clear();
    for (const set of this.listeners.values()) for (const listener of set) listener(message);
  }

  async stop(): Promise<void> {
    this.isStopped = true;
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners();
      client.on("error", () => {});
      await client.end().catch(() => {});
    }
  }
}
