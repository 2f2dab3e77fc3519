import { assertEquals, assertMatch } from "../helpers/assert.ts";
import {
  clientConfig,
  DaemonProcess,
  Prefix,
  serverConfig,
} from "../helpers/daemon.ts";
import { LoggedProcess } from "../helpers/logged_process.ts";
import { LocalClient } from "../helpers/local_client.ts";
import { releaseAll, waitStarted } from "../security/_trust_helpers.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** `make run` in a process group of its own, its stderr as a log. */
class MakeRun extends LoggedProcess {
  static start(prefix: Prefix): MakeRun {
    const child = new Deno.Command("/usr/bin/setsid", {
      args: ["make", "-s", "run", `ARGS=--prefix ${prefix.path}`],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    return new MakeRun(prefix.path, child, {
      name: "make run",
      log: child.stderr,
    });
  }
}

Deno.test({
  name: "make run under a process-group SIGTERM drains like a single SIGTERM",
  ignore: !(await Deno.stat("/usr/bin/setsid").catch(() => undefined)),
  async fn() {
    await using serverPrefix = await Prefix.create(serverConfig(), {
      scripts: [],
    });
    await using server = await DaemonProcess.start(serverPrefix);
    await using clientPrefix = await Prefix.create(
      clientConfig(server.port),
      { scripts: ["wait-release"] },
    );
    await using make = MakeRun.start(clientPrefix);
    try {
      await make.waitForLog(/ready: ws-daemon/, 60_000);
      await server.waitForLog(/peer client .* says hello/);
      await using local = await LocalClient.connect(server.socket);
      await local.send({ name: "wait-release", id: "held", params: 0 });
      await waitStarted(clientPrefix, "held");
      // Both make and the daemon get it; make passes it on once more.
      Deno.kill(-make.child.pid, "SIGTERM");
      await make.waitForLog(/shutting down/);
      await releaseAll(clientPrefix);
      const answer = await local.next(15_000);
      assertEquals([answer.id, answer.status], ["held", 0], make.log());
      // make itself dies of the SIGTERM (143); the daemon drained and stopped.
      await make.exited();
      assertMatch(make.log(), /INFO stopped/);
      assertEquals(make.count(/again: killing/), 0, make.log());
    } finally {
      await releaseAll(clientPrefix);
    }
  },
});
