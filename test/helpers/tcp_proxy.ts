/**
 * A TCP proxy on loopback that injects faults into the connections through
 * it: cut them (optionally in the middle of the next chunk, so a frame is
 * torn), or stall them (hold every byte, both ways, without closing) and
 * later let the held bytes go.
 *
 * @module
 */

interface Piped {
  a: Deno.Conn;
  b: Deno.Conn;
  closed: boolean;
}

export class TcpProxy {
  readonly #listener: Deno.Listener;
  readonly #target: number;
  readonly #pairs = new Set<Piped>();
  readonly #pumps = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  #stalled = false;
  #held: { to: Deno.Conn; bytes: Uint8Array; pair: Piped }[] = [];
  #tearNext = false;
  #torn: PromiseWithResolvers<void> | undefined;
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(target: number) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  /** A proxy to 127.0.0.1:`target`. */
  static start(target: number): TcpProxy {
    return new TcpProxy(target);
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Connections open now. */
  get open(): number {
    return [...this.#pairs].filter((pair) => !pair.closed).length;
  }

  async #accept(): Promise<void> {
    try {
      for await (const a of this.#listener) {
        this.accepted++;
        let b: Deno.Conn;
        try {
          b = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
        } catch {
          a.close();
          continue;
        }
        const pair: Piped = { a, b, closed: false };
        this.#pairs.add(pair);
        this.#pump(pair, a, b);
        this.#pump(pair, b, a);
      }
    } catch {
      // Listener closed.
    }
  }

  #pump(pair: Piped, from: Deno.Conn, to: Deno.Conn): void {
    const pump = (async () => {
      const buffer = new Uint8Array(16 * 1024);
      try {
        while (!pair.closed) {
          const n = await from.read(buffer);
          if (n === null) break;
          let bytes = buffer.slice(0, n);
          if (this.#stalled) {
            this.#held.push({ to, bytes, pair });
            continue;
          }
          if (this.#tearNext && n > 1) {
            // Half a chunk goes through, then the connection is gone.
            this.#tearNext = false;
            bytes = bytes.subarray(0, Math.floor(n / 2));
            await writeAll(to, bytes).catch(() => {});
            this.#close(pair);
            this.#torn?.resolve();
            break;
          }
          await writeAll(to, bytes);
        }
      } catch {
        // Either side gone.
      }
      this.#close(pair);
    })();
    this.#pumps.add(pump);
    pump.finally(() => this.#pumps.delete(pump));
  }

  #close(pair: Piped): void {
    if (pair.closed) return;
    pair.closed = true;
    for (const conn of [pair.a, pair.b]) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    this.#pairs.delete(pair);
  }

  /** Closes every connection now, both ways. */
  cut(): void {
    for (const pair of [...this.#pairs]) this.#close(pair);
  }

  /**
   * The next chunk in either direction goes only half through, then its
   * connection is closed: a frame torn in the middle. Resolves once it has.
   */
  async tear(timeoutMs = 10_000): Promise<void> {
    this.#tearNext = true;
    this.#torn = Promise.withResolvers<void>();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([this.#torn.promise, late]);
    clearTimeout(timer);
    if (this.#tearNext) {
      // Nothing flowed: a plain cut instead.
      this.#tearNext = false;
      this.cut();
    }
  }

  /** From now on no byte passes, either way; connections stay open. */
  stall(): void {
    this.#stalled = true;
  }

  /** Lets the held bytes through (to connections still open), and new ones. */
  async resume(): Promise<void> {
    // In order: what was held goes first, bytes read meanwhile join it.
    while (this.#held.length > 0) {
      const { to, bytes, pair } = this.#held.shift()!;
      if (pair.closed) continue;
      try {
        await writeAll(to, bytes);
      } catch {
        this.#close(pair);
      }
    }
    this.#stalled = false;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    this.cut();
    await Promise.all([...this.#pumps]);
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}
