/**
 * The log as a listener of the event bus: one info line per request, on the
 * daemon that asked (name, id, peer, status, duration) and on the one that
 * ran it. Script output lines are logged by the launchers, as they come.
 *
 * @module
 */

import type { Logger } from "../log.ts";
import type { EventBus, EventMap } from "./bus.ts";

function idPart(data: { id?: unknown }): string {
  return Object.hasOwn(data, "id") ? ` id=${JSON.stringify(data.id)}` : "";
}

/** Logs what the bus carries that the log should say; returns the remover. */
export function logEvents(bus: EventBus, log: Logger): () => void {
  return bus.on((event) => {
    if (!log.enabled("info")) return;
    switch (event.type) {
      case "status.returned": {
        const data = event.data as EventMap["status.returned"];
        log.info(
          `request ${data.name}${idPart(data)} peer=${
            data.peer ?? "-"
          }: status ${data.status} in ${data.durationMs} ms${
            data.error === undefined ? "" : ` (${data.error})`
          }`,
          {
            script: data.name,
            ...(Object.hasOwn(data, "id") ? { id: data.id } : {}),
            peer: data.peer ?? null,
            status: data.status,
            durationMs: data.durationMs,
            ...(data.error === undefined ? {} : { error: data.error }),
          },
        );
        return;
      }
      case "script.finished": {
        const data = event.data as EventMap["script.finished"];
        log.info(
          `ran ${data.name}${
            idPart(data)
          } for ${data.peer}: status ${data.status}${
            data.signal ? ` (${data.signal})` : ""
          } in ${data.durationMs} ms`,
          {
            script: data.name,
            ...(Object.hasOwn(data, "id") ? { id: data.id } : {}),
            peer: data.peer,
            status: data.status,
            signal: data.signal,
            durationMs: data.durationMs,
          },
        );
        return;
      }
    }
  });
}
