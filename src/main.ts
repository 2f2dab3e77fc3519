/**
 * The command line: `ws-daemon [run|check] [--prefix DIR] [--log-level L]`,
 * and the subcommands under `cli/` (`init`, `join`). Maps every failure to
 * one line on stderr and an exit code.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { ConfigError, DEFAULT_PREFIX } from "./config.ts";
import { loadConfig } from "./config_files.ts";
import { Daemon } from "./daemon.ts";
import { LOG_LEVELS, Logger, type LogLevel } from "./log.ts";
import { VERSION } from "./version.ts";

/** Subcommands with options of their own, each in a file under cli/. */
const SUBCOMMANDS: Record<
  string,
  () => Promise<(args: string[]) => Promise<number>>
> = {
  init: async () => (await import("./cli/init.ts")).runInit,
  join: async () => (await import("./cli/join.ts")).runJoin,
  send: async () => (await import("./cli/send.ts")).runSend,
  status: async () => (await import("./cli/status.ts")).runStatus,
  watch: async () => (await import("./cli/watch.ts")).runWatch,
  check: async () => (await import("./cli/check.ts")).runCheck,
};

const USAGE = `Usage: ws-daemon [run|check] [--prefix DIR] [--log-level LEVEL]
       ws-daemon init --mode server [--prefix DIR] [--port N] [--host NAME]...
       ws-daemon init --peer NAME [--prefix DIR]
       ws-daemon join LINE [--prefix DIR] [--name NAME]
       ws-daemon send NAME [PARAMS | -] [--to PEER] [--output] [--json]...
       ws-daemon status [--json]
       ws-daemon watch [--events LIST] [--peer NAME] [--json]

  run      start the daemon (the default)
  check    validate the config, the scripts and the permissions; exit 0 if clean
  init     create a server prefix with TLS and a peer token; prints a join line
  join     create a client prefix from a server's join line
  send     run a script through the running daemon; exits with its exit code
  status   the running daemon and its peers
  watch    the running daemon's events, live

  Each subcommand has --help.

  --prefix DIR        folder with config.json and scripts/
                      (default: $WSDAEMON_PREFIX, else ${DEFAULT_PREFIX})
  --log-level LEVEL   debug, info, warn or error (default: the config's, else info)
  --version           print the version
  --help              print this help
`;

/** Exit codes: 0 ok, 1 runtime failure, 2 usage, 78 bad configuration. */
const EXIT_USAGE = 2;
const EXIT_CONFIG = 78;

function fail(message: string, code: number): never {
  console.error(`ws-daemon: ${message}`);
  Deno.exit(code);
}

async function main(args: string[]): Promise<void> {
  const subcommand = SUBCOMMANDS[args[0] ?? ""];
  if (subcommand) Deno.exit(await (await subcommand())(args.slice(1)));
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        prefix: { type: "string" },
        "log-level": { type: "string" },
        version: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    // parseArgs' own words advise things that do not apply here.
    const option = String((error as Error).message).match(/'(-[^']*)'/)?.[1];
    fail(
      `${
        option ? `unknown option ${option.split(/[ ,]/)[0]}` : "bad arguments"
      } (see --help)`,
      EXIT_USAGE,
    );
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.version) {
    console.log(`ws-daemon ${VERSION} (Deno ${Deno.version.deno})`);
    return;
  }
  const command = positionals[0] ?? "run";
  if (positionals.length > 1 || (command !== "run" && command !== "check")) {
    fail(
      `unknown command ${
        JSON.stringify(positionals.join(" "))
      }: expected run, check, init, join, send, status or watch (see --help)`,
      EXIT_USAGE,
    );
  }
  if (command === "check") {
    const { runCheck } = await import("./cli/check.ts");
    Deno.exit(await runCheck(values.prefix ? ["--prefix", values.prefix] : []));
  }
  const logLevel = values["log-level"];
  if (logLevel !== undefined && !LOG_LEVELS.includes(logLevel as LogLevel)) {
    fail(
      `--log-level must be one of ${LOG_LEVELS.join(", ")}: found ${
        JSON.stringify(logLevel)
      }`,
      EXIT_USAGE,
    );
  }
  const prefix = values.prefix ?? Deno.env.get("WSDAEMON_PREFIX") ??
    DEFAULT_PREFIX;

  const load = () =>
    loadConfig(prefix, {
      WSDAEMON_SECRET: Deno.env.get("WSDAEMON_SECRET"),
      WSDAEMON_LOCAL_TCP: Deno.env.get("WSDAEMON_LOCAL_TCP"),
    });
  let loaded;
  try {
    loaded = await load();
  } catch (error) {
    if (error instanceof ConfigError) {
      fail(`config error: ${error.message}`, EXIT_CONFIG);
    }
    throw error;
  }
  const { config, warnings } = loaded;
  const log = new Logger(
    (logLevel as LogLevel | undefined) ?? config.logLevel,
    config.logFormat,
  );
  for (const warning of warnings) log.warn(`config: ${warning}`);

  let daemon: Daemon;
  try {
    // The constructor opens the journal, which another daemon may hold.
    daemon = new Daemon({ prefix, config, log, env: Deno.env.toObject() });
  } catch (error) {
    fail(`cannot start: ${(error as Error).message}`, 1);
  }
  // Signals are taken before the ready line, which is what a supervisor (or
  // a test) waits for before it may signal: one that came between the two
  // would end the daemon by its default action.
  const started = Promise.withResolvers<void>();
  const stopped = Promise.withResolvers<void>();
  let stopping = false;
  const onSignal = (signal: Deno.Signal) => () => {
    if (stopping) {
      log.warn(`${signal} again: killing every script's group, exiting now`);
      daemon.killScripts();
      Deno.exit(1);
    }
    stopping = true;
    log.info(`${signal} received`);
    started.promise.then(() => daemon.stop()).then(
      stopped.resolve,
      stopped.reject,
    );
  };
  Deno.addSignalListener("SIGINT", onSignal("SIGINT"));
  Deno.addSignalListener("SIGTERM", onSignal("SIGTERM"));
  // SIGHUP: read the config again (`init --peer` adds a token).
  let reloads = 0;
  Deno.addSignalListener("SIGHUP", () => {
    // Reads may overlap: only the newest one is applied.
    const reload = ++reloads;
    load().then(
      (reloaded) => {
        if (reload !== reloads) return;
        for (const warning of reloaded.warnings) log.warn(`config: ${warning}`);
        daemon.reload(
          reloaded.config,
          (logLevel as LogLevel | undefined) ?? reloaded.config.logLevel,
        );
      },
      (error) => {
        log.error(
          `SIGHUP: config not reloaded, the old one stays: ${
            (error as Error).message
          }`,
        );
        daemon.reloadFailed((error as Error).message);
      },
    );
  });
  try {
    await daemon.start();
  } catch (error) {
    fail(`cannot start: ${(error as Error).message}`, 1);
  }
  started.resolve();
  await stopped.promise;
  Deno.exit(0);
}

if (import.meta.main) {
  await main(Deno.args);
}
