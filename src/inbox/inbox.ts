/**
 * The inbox: requests from peers with the `ack` feature, run at most once per
 * (asking peer, request key) across redeliveries and restarts.
 *
 * The key is the request's ref, or its own `key` (see runKey). A request is
 * acknowledged once its row is committed, and its script starts only after
 * "started" is committed, so a crash can never make it run twice: a run
 * found started on restart is answered -6 (outcome unknown). A duplicate of
 * a finished run gets its recorded status again (`duplicate: true` when it
 * came under another ref: a new request reusing the id); a duplicate of a
 * running one waits for it. A status is sent again whenever its asker comes
 * back, until the asker acknowledges it.
 *
 * @module
 */

import {
  type Message,
  parseMessage,
  Status,
  type StatusData,
} from "../protocol.ts";
import { MAX_KEY_CHARS, requestMs } from "../request_fields.ts";
import { notStarted, runFlags, type ScriptRunner } from "../scripts.ts";
import type { PeerLink } from "../remote/peer_link.ts";
import type { Remote } from "../remote/remote.ts";
import type { AckBatcher } from "../outbox/acks.ts";
import type { Logger } from "../log.ts";
import type { RunRow, RunRows } from "./run_rows.ts";

export interface InboxOptions {
  rows: RunRows;
  runner: ScriptRunner;
  remote: Remote;
  acks: AckBatcher;
  log: Logger;
  /** Sends a status for `ref` on `link` (peer_frames.ts encodes it). */
  answer(link: PeerLink, status: StatusData, ref: string): void;
}

/**
 * The run a request asks for: its ref, which the asking daemon gave it once
 * and keeps in its journal, so every redelivery of one request has the same
 * key while two requests that reuse an `id` stay two. A request may name its
 * own `key` (a string): a local process that lost its connection and asks
 * again with the same key gets the first run's status instead of a second run.
 */
export function runKey(message: Message, ref: string): string {
  const key = message.fields.key;
  return typeof key === "string" && key.length >= 1 &&
      key.length <= MAX_KEY_CHARS
    ? `key:${key}`
    : `ref:${ref}`;
}

export class Inbox {
  readonly #options: InboxOptions;

  constructor(options: InboxOptions) {
    this.#options = options;
  }

  /**
   * A request from `link` (checked already for policy and rate): recorded,
   * acknowledged, and run unless it ran or runs already.
   */
  /**
   * A request this inbox has seen (a redelivery, or another request with
   * the same `key`): it waits for, or gets, the first run's status, and
   * true is returned; false for a request not seen before.
   */
  again(link: PeerLink, message: Message, ref: string): boolean {
    const { rows, acks, log } = this.#options;
    const peer = link.name;
    const key = runKey(message, ref);
    const run = rows.get(peer, key);
    if (!run) return false;
    rows.owe(peer, ref, key);
    acks.request(link, ref);
    log.debug(
      `from ${peer}: request ${key} again (${run.state}): not run again`,
    );
    if (run.state === "done") this.#sendRecorded(link, run, ref);
    return true;
  }

  receive(link: PeerLink, message: Message, ref: string, text: string): void {
    const { rows, acks, log } = this.#options;
    const peer = link.name;
    const key = runKey(message, ref);
    // PeerFrames has asked again() first: this request is new.
    const quota = this.#peerQuota();
    if (
      !rows.journal.hasRoom() ||
      (rows.journal.rows >= quota && rows.heldFor(peer) >= quota)
    ) {
      log.warn(`from ${peer}: request refused: the journal is full`);
      this.#options.answer(link, {
        status: Status.REFUSED,
        error:
          "busy: the peer's journal is full (journalMaxRows or journalMaxBytes, or this asker's quarter of it)",
      }, ref);
      return;
    }
    rows.insert(peer, key, ref, text);
    rows.owe(peer, ref, key);
    acks.request(link, ref);
    this.#run(peer, key, ref, message).catch((error) => {
      log.error(`script ${message.name}: ${(error as Error).stack}`);
    });
  }

  /** Rows one peer may hold: a quarter of the journal, so that one peer
   * that never acknowledges cannot fill it for everyone. */
  #peerQuota(): number {
    return Math.max(1, Math.floor(this.#options.rows.journal.maxRows / 4));
  }

  /** The asker recorded these statuses: they are not sent again. */
  onStatusAck(link: PeerLink, refs: string[]): void {
    for (const ref of refs) this.#options.rows.paid(link.name, ref);
  }

  /** A peer that is back gets every status still owed to it. */
  onReady(link: PeerLink): void {
    if (!link.has("ack")) return;
    for (const { ref, run } of this.#options.rows.owedTo(link.name)) {
      this.#sendRecorded(link, run, ref);
    }
  }

  /**
   * After a restart: a run that had started may or may not have finished,
   * and is never started again (-6); one that had not is started now.
   */
  replay(): void {
    const { rows, log } = this.#options;
    let unknown = 0;
    let started = 0;
    let skipped = 0;
    for (const run of rows.unfinished()) {
      if (run.state === "started") {
        unknown++;
        this.#finish(run.peer, run.key, run.ref, {
          status: Status.OUTCOME_UNKNOWN,
          error: `the daemon running it stopped while it ran${
            run.pid ? ` (pid ${run.pid})` : ""
          }; it may or may not have finished`,
        });
        continue;
      }
      let message: Message;
      try {
        message = parseMessage(run.frame);
      } catch {
        rows.drop(run.peer, run.key);
        skipped++;
        continue;
      }
      started++;
      this.#run(run.peer, run.key, run.ref, message).catch((error) => {
        log.error(`script ${message.name}: ${(error as Error).stack}`);
      });
    }
    if (unknown + started + skipped > 0) {
      log.info(
        `journal: ${started} received request(s) started, ${unknown} cut off by the restart answered -6${
          skipped ? `, ${skipped} unreadable row(s) skipped` : ""
        }`,
      );
    }
  }

  async #run(
    peer: string,
    key: string,
    ref: string,
    message: Message,
  ): Promise<void> {
    const { rows, runner } = this.#options;
    let timeoutMs: number | undefined;
    try {
      timeoutMs = requestMs(message, "timeoutMs");
    } catch (error) {
      this.#finish(peer, key, ref, {
        status: Status.REJECTED,
        error: (error as Error).message,
      });
      return;
    }
    let marked = false;
    const status = await runner.run({
      name: message.name,
      id: message.id,
      hasId: message.hasId,
      params: message.params,
      peer,
      timeoutMs,
      ...runFlags(message),
      beforeStart: async () => {
        // Its row went with a batch that could not be written: it must not
        // run unrecorded (a redelivery would run it again).
        if (!rows.started(peer, key)) {
          return "busy: not started: the journal could not record it";
        }
        marked = true;
        try {
          await rows.journal.committed();
          return undefined;
        } catch (error) {
          marked = false; // Rolled back: it is not "started" on disk.
          return `busy: not started: ${(error as Error).message}`;
        }
      },
      onStarted: (pid) => rows.pid(peer, key, pid),
    });
    if (notStarted(status)) {
      // Shutting down: it is started after the restart instead.
      if (marked) {
        rows.journal.write(
          "UPDATE runs SET state = 'received' WHERE peer = ? AND key = ?",
          [peer, key],
        );
      }
      return;
    }
    this.#finish(peer, key, ref, status);
  }

  /**
   * Records a run's status and sends it to every ref waiting for it, without
   * waiting for the commit: should this daemon die before it, the restart
   * answers -6 for the run, which the asker, holding the true status
   * already, ignores.
   */
  #finish(
    peer: string,
    key: string,
    firstRef: string,
    status: StatusData,
  ): void {
    const { rows } = this.#options;
    delete status.id;
    rows.finish(peer, key, status);
    const link = this.#options.remote.links().find((candidate) =>
      candidate.isReady && candidate.name === peer && candidate.has("ack")
    );
    if (!link) return; // Sent when the peer is back (onReady).
    // The first ref is answered even if its "owed" row was lost with a
    // batch that could not be written: its asker waits for it.
    const refs = new Set([firstRef, ...rows.owedRefs(peer, key)]);
    for (const ref of refs) this.#send(link, { ...status }, firstRef, ref);
  }

  /** Commits what is recorded (at shutdown, before the links close). */
  sent(): Promise<void> {
    this.#options.rows.journal.flush();
    return Promise.resolve();
  }

  /** Sends a finished run's status, as recorded, to `ref`. */
  #sendRecorded(link: PeerLink, run: RunRow, ref: string): void {
    let status: StatusData;
    try {
      status = JSON.parse(run.status ?? "");
    } catch {
      status = {
        status: Status.OUTCOME_UNKNOWN,
        error: "its recorded status could not be read",
      };
    }
    this.#send(link, status, run.ref, ref);
  }

  /** A status to one of the refs that asked for the run `firstRef` began. */
  #send(
    link: PeerLink,
    status: StatusData,
    firstRef: string,
    ref: string,
  ): void {
    if (firstRef !== ref) status.duplicate = true;
    this.#options.answer(link, status, ref);
  }
}
