/**
 * The handlers of `+cmd`: commands a local process has this daemon run.
 * Each is found by its checked code (`table.ts`); each answers the
 * connection with one line `{"id", "status", …}`.
 *
 * @module
 */

import {
  type Message,
  Status,
  type StatusReport,
  withId,
} from "../protocol.ts";
import type { LocalConnection } from "../local/connection.ts";
import type { Remote } from "../remote/remote.ts";
import type { Outbox } from "../outbox/outbox.ts";
import type { Subscriptions } from "../events/subscriptions.ts";
import type { EventRelay } from "../events/relay.ts";
import type { CheckedCommand } from "./table.ts";
import { type DaemonFacts, info, listScripts, peers } from "./introspect.ts";

export interface LocalCommandsOptions {
  remote: Remote;
  outbox: Outbox;
  facts: DaemonFacts;
  subscriptions: Subscriptions;
  relay: EventRelay;
  /**
   * Sends a command to the peer on behalf of `connection`, as `&cmd` would
   * (PING's round trip).
   */
  forward(
    connection: LocalConnection,
    message: Message,
    command: CheckedCommand,
  ): void;
}

export class LocalCommands {
  readonly #options: LocalCommandsOptions;

  constructor(options: LocalCommandsOptions) {
    this.#options = options;
  }

  run(
    connection: LocalConnection,
    message: Message,
    command: CheckedCommand,
  ): void {
    const answer = (report: StatusReport) =>
      connection.reply(withId(report, message));
    const { remote, outbox, facts } = this.#options;
    switch (command.code) {
      case "STATUS":
        // Part 1: written back to the connection as it is.
        return connection.reply(command.data);
      case "RESULT":
        return answer({ status: 0, data: outbox.result(command.data.id) });
      case "PAUSE":
        remote.pause(command.data);
        return answer({ status: 0 });
      case "INFO":
        return answer({ status: 0, data: info(facts) });
      case "PEERS":
        return answer({
          status: 0,
          data: peers(remote.links(), (link) => outbox.inFlight(link)),
        });
      case "SCRIPTS": {
        const asker = command.data.peer;
        if (asker === undefined) {
          return answer({ status: 0, data: listScripts(facts.scriptsDir) });
        }
        const link = remote.links().find((l) => l.isReady && l.name === asker);
        if (link === undefined) {
          return answer({
            status: Status.NO_PEER,
            error: `peer ${JSON.stringify(asker)} is not connected`,
          });
        }
        return answer({
          status: 0,
          data: listScripts(facts.scriptsDir, link.policy.scripts),
        });
      }
      case "PING":
        return this.#options.forward(connection, message, command);
      case "SUBSCRIBE": {
        const { subscriptions, relay } = this.#options;
        subscriptions.add(connection, command.data, () => ({
          sink: relay.sinkOf(connection),
        }));
        connection.streaming = true;
        return answer({
          status: 0,
          data: {
            events: command.data.events ?? "all",
            peers: command.data.peers ?? "all",
          },
        });
      }
      case "UNSUBSCRIBE": {
        const { subscriptions, relay } = this.#options;
        const had = subscriptions.remove(connection, command.data.events);
        relay.settle(connection);
        return answer(
          had ? { status: 0 } : {
            status: 0,
            data: { note: "this connection had no subscription" },
          },
        );
      }
    }
  }
}
