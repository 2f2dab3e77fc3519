/**
 * Every way the daemon can start a script (`scriptLauncher`) keeps the same
 * promises: exit codes and signals as statuses, a process group and session
 * of the script's own, default signal dispositions, stdin from /dev/null,
 * the daemon's environment, output in the log, and -1 for a script that
 * cannot be executed.
 */

import { assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  PERMISSIONS,
  Prefix,
  serverConfig,
  startPair,
} from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";

/** Each launcher, and the words its startup line uses. */
const LAUNCHERS = [
  { kind: "posix_spawn", described: /scripts start with posix_spawn/ },
  { kind: "setsid", described: /scripts start with Deno\.Command through/ },
  { kind: "detached", described: /scripts start with Deno\.Command, detached/ },
] as const;

/** "key=value" lines as an object. */
function keyValues(text: string): Record<string, string> {
  return Object.fromEntries(
    text.trim().split("\n").map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1)];
    }),
  );
}

/** Signals 1 to 31 of a /proc/<pid>/status mask (hex, bit n-1 is signal n). */
function standardSignals(mask: string): number {
  return Number(BigInt(`0x${mask}`) & 0x7fffffffn);
}

for (const { kind, described } of LAUNCHERS) {
  Deno.test(`scriptLauncher "${kind}" runs scripts as promised`, async (t) => {
    await using pair = await startPair({
      client: { scriptLauncher: kind },
      args: ["--log-level", "debug"],
    });
    const { server, client, clientPrefix } = pair;
    await client.waitForLog(described);
    await using local = await LocalClient.connect(server.socket);

    await t.step(
      "exit codes and a killing signal become statuses",
      async () => {
        for (const code of [0, 5]) {
          const answer = await local.request({
            name: "exit-with",
            id: `exit-${code}`,
            params: code,
          });
          assertEquals([answer.status, answer.id], [code, `exit-${code}`]);
        }
        const killed = await local.request({ name: "kill-self", id: "ks" });
        assertEquals(
          [killed.status, killed.signal, killed.id],
          [128 + 15, "SIGTERM", "ks"],
        );
      },
    );

    await t.step(
      "a script leads its own session and group, with default signals, stdin from /dev/null and the daemon's environment",
      async () => {
        const answer = await local.request({
          name: "describe-process",
          id: "d",
        });
        assertEquals([answer.status, answer.id], [0, "d"]);
        const seen = keyValues(
          await Deno.readTextFile(clientPrefix.file("out", "d")),
        );
        assertEquals(seen.pgrp, seen.pid, "process group");
        assertEquals(seen.session, seen.pid, "session");
        // Deno ignores SIGPIPE; a script must not inherit that. Signals 32
        // and 33 belong to glibc, which may leave them ignored across a
        // posix_spawn and sets them up again in every new program.
        assertEquals(
          [standardSignals(seen.SigIgn), standardSignals(seen.SigBlk)],
          [0, 0],
          `ignored and blocked signals (SigIgn ${seen.SigIgn}, SigBlk ${seen.SigBlk})`,
        );
        assertEquals(seen.stdin, "/dev/null");
        assertEquals(seen.PATH, "set", "PATH from the daemon's environment");
      },
    );

    await t.step("params of 131071 bytes arrive whole as argv[1]", async () => {
      const params = "é".repeat(65_534); // 131,068 bytes, 131,070 as JSON
      const answer = await local.request({ name: "record", id: "big", params });
      assertEquals([answer.status, answer.id], [0, "big"]);
      const recorded = await Deno.readTextFile(clientPrefix.file("out", "big"));
      assertEquals(recorded.split("\n")[0], JSON.stringify(params));
    });

    await t.step(
      "stdout and stderr lines, /dev/stderr included, reach the log with the script's name and id",
      async () => {
        const answer = await local.request({
          name: "print",
          id: "p",
          params: "hi",
        });
        assertEquals([answer.status, answer.id], [0, "p"]);
        await client.waitForLog(/script print id="p"[^:]*: out: "hi"/);
        await client.waitForLog(/script print id="p"[^:]*: err: "hi"/);
        await client.waitForLog(/script print id="p"[^:]*: dev: "hi"/);
      },
    );

    await t.step("a script without #! runs under /bin/sh", async () => {
      await clientPrefix.addScript("no-shebang", "exit 4\n");
      const answer = await local.request({ name: "no-shebang", id: "ns" });
      assertEquals([answer.status, answer.id], [4, "ns"]);
    });

    await t.step(
      "a missing interpreter answers -1 saying the script could not start",
      async () => {
        await clientPrefix.addScript("bad-interpreter", "#!/no/such/sh\n");
        const answer = await local.request({
          name: "bad-interpreter",
          id: "bi",
        });
        assertEquals([answer.status, answer.id], [-1, "bi"]);
        assertMatch(answer.error as string, /could not start/);
        assertMatch(answer.error as string, /no such file/i);
        const alive = await local.request({ name: "noop", id: "alive" });
        assertEquals([alive.status, alive.id], [0, "alive"]);
      },
    );

    await t.step(
      "a script that leaves a child holding its output reports at once",
      async () => {
        try {
          const answer = await local.request({ name: "spawn-child", id: "sc" });
          assertEquals([answer.status, answer.id], [0, "sc"]);
        } finally {
          const pid = Number(
            await Deno.readTextFile(clientPrefix.file("child.pid")).catch(
              () => "",
            ),
          );
          if (pid > 0) {
            try {
              Deno.kill(pid, "SIGKILL");
            } catch {
              // Already gone.
            }
          }
        }
      },
    );

    await t.step(
      "40 scripts whose children keep their output open do not hold up the next one",
      async () => {
        try {
          await local.send(
            ...Array.from({ length: 40 }, (_, i) => ({
              name: "hold-output",
              id: `h${i}`,
            })),
          );
          const held = await local.take(40);
          assertEquals(held.map((a) => a.status), held.map(() => 0));
          // Output readers that tied up a thread each once stalled this.
          const next = await local.request({ name: "noop", id: "next" }, 5_000);
          assertEquals([next.status, next.id], [0, "next"]);
        } finally {
          const pids = await Deno.readTextFile(clientPrefix.file("held.pids"))
            .catch(() => "");
          for (const pid of pids.split("\n").filter(Boolean)) {
            try {
              Deno.kill(Number(pid), "SIGKILL");
            } catch {
              // Already gone.
            }
          }
        }
      },
    );

    await t.step("the daemon stops cleanly and exits 0", async () => {
      const status = await client.stop("SIGTERM");
      assertEquals(status.code, 0);
      const errors = client.lines.filter((line) =>
        / ERROR |uncaught/.test(line)
      );
      assertEquals(errors, [], "errors logged");
    });
  });
}

Deno.test('"auto" without --allow-ffi says why and starts scripts with setsid(1)', async () => {
  await using serverPrefix = await Prefix.create(serverConfig(), {
    scripts: ["exit-with", "noop"],
  });
  await using server = await DaemonProcess.start(serverPrefix, {
    permissions: PERMISSIONS.filter((flag) => flag !== "--allow-ffi"),
    args: ["--log-level", "debug"],
  });
  await server.waitForLog(
    /posix_spawn cannot be used: FFI is not allowed.*Deno\.Command through/,
  );
  await using clientPrefix = await Prefix.create(clientConfig(server.port), {
    scripts: [],
  });
  await using client = await DaemonProcess.start(clientPrefix);
  await server.waitForLog(/peer client .* says hello/);
  await using local = await LocalClient.connect(client.socket);
  const answer = await local.request({ name: "exit-with", id: "e", params: 3 });
  assertEquals([answer.status, answer.id], [3, "e"]);
});
