/**
 * The event bus: what happens in the daemon, as typed events, for whoever
 * listens (the request log line, local and peer subscriptions; later,
 * metrics). Listeners run synchronously and must be cheap: nothing on the
 * hot path waits for one, and a slow consumer keeps its own bounded backlog
 * (see `subscriptions.ts`).
 *
 * @module
 */

/** Every event, by type, with its data. Fields absent are unknown. */
export interface EventMap {
  /** A link is ready: named, introduced, and takes requests. */
  "peer.up": {
    peer: string;
    address: string;
    version?: string;
    features: string[];
  };
  /** A link closed. */
  "peer.down": { peer: string; address: string; reason: string };
  /** A request of a local process went to a peer. */
  "request.sent": {
    name: string;
    id?: unknown;
    peer: string;
    ref: string;
  };
  /** A peer's request arrived here, to run. */
  "request.received": {
    name: string;
    id?: unknown;
    peer: string;
    ref?: string;
  };
  /** A script started for a peer's request. */
  "script.started": { name: string; id?: unknown; peer: string; pid: number };
  /** One line a running script wrote (the log gets it too). */
  "script.output": {
    name: string;
    id?: unknown;
    peer: string;
    stream: "stdout" | "stderr";
    line: string;
  };
  /** A script ended: its status, exit code or signal, and how long it ran. */
  "script.finished": {
    name: string;
    id?: unknown;
    peer: string;
    status: number;
    exitCode: number | null;
    signal: string | null;
    durationMs: number;
  };
  /** A status went back to the local process that asked. */
  "status.returned": {
    name: string;
    id?: unknown;
    peer?: string;
    status: number;
    durationMs: number;
    error?: string;
  };
  /** Something was refused by policy or a limit (-5), or was invalid. */
  "refused": {
    reason: string;
    status: number;
    peer?: string;
    name?: string;
    id?: unknown;
  };
  /** The configuration was read again (SIGHUP). */
  "config.reloaded": { ok: boolean; error?: string };
}

export type EventType = keyof EventMap;

/** The types a subscription may name. */
export const EVENT_TYPES: readonly EventType[] = [
  "peer.up",
  "peer.down",
  "request.sent",
  "request.received",
  "script.started",
  "script.output",
  "script.finished",
  "status.returned",
  "refused",
  "config.reloaded",
];

/** One event as listeners get it. */
export interface DaemonEvent<T extends EventType = EventType> {
  type: T;
  /** When it happened, in ms since the epoch. */
  at: number;
  data: EventMap[T];
}

export type Listener = (event: DaemonEvent) => void;

export class EventBus {
  readonly #listeners = new Set<Listener>();
  readonly #onError: (error: unknown) => void;

  /** @param onError told of a listener that threw; the others still run. */
  constructor(onError: (error: unknown) => void = () => {}) {
    this.#onError = onError;
  }

  /** Whether anybody listens: callers may skip building costly data. */
  get listened(): boolean {
    return this.#listeners.size > 0;
  }

  /** Adds a listener; returns the function that removes it. */
  on(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  emit<T extends EventType>(type: T, data: EventMap[T]): void {
    if (this.#listeners.size === 0) return;
    const event: DaemonEvent<T> = { type, at: Date.now(), data };
    for (const listener of this.#listeners) {
      try {
        listener(event as DaemonEvent);
      } catch (error) {
        this.#onError(error);
      }
    }
  }
}
