/**
 * What can be checked of the packaging here, where no image can be built
 * and systemd does not run: the unit passes `systemd-analyze verify`, the
 * Dockerfile has its two stages and paths, and the image's entrypoint does
 * what it says when run directly.
 *
 * @module
 */

import { assert, assertEquals, assertMatch } from "../helpers/assert.ts";
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
const UNIT = join(ROOT, "scripts/ws-daemon.service");
const ENTRYPOINT = join(ROOT, "docker/entrypoint.sh");

function haveProgram(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** `key=value` settings of a unit file (the last of a repeated key). */
function settings(text: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = line.match(/^([A-Za-z]+)=(.*)$/);
    if (match) found.set(match[1], match[2]);
  }
  return found;
}

Deno.test(
  "the systemd unit drains on stop, restarts on failure, is confined, and passes systemd-analyze verify",
  {
    ignore: !haveProgram("/usr/bin/systemd-analyze"),
  },
  async () => {
    const text = await Deno.readTextFile(UNIT);
    const unit = settings(text);
    assertEquals(unit.get("KillMode"), "mixed");
    // Above shutdownGraceMs (10 s) and killGraceMs (5 s) together.
    assert(Number(unit.get("TimeoutStopSec")) > 15, "TimeoutStopSec");
    assertEquals(unit.get("Restart"), "on-failure");
    assertEquals(unit.get("NoNewPrivileges"), "yes");
    assertEquals(unit.get("ProtectSystem"), "strict");
    assertEquals(unit.get("PrivateTmp"), "yes");
    const prefix = unit.get("Environment")?.match(/^WSDAEMON_PREFIX=(.*)$/)
      ?.[1];
    assertEquals(unit.get("ReadWritePaths"), prefix, "the prefix is writable");

    const dir = await Deno.makeTempDir();
    try {
      // verify wants ExecStart's program to exist: a stand-in of ours.
      const program = join(dir, "ws-daemon");
      await Deno.writeTextFile(program, "#!/bin/sh\n", { mode: 0o755 });
      const copy = join(dir, "ws-daemon.service");
      await Deno.writeTextFile(
        copy,
        text.replace(
          "ExecStart=/usr/local/bin/ws-daemon",
          `ExecStart=${program}`,
        ),
      );
      const output = await new Deno.Command("/usr/bin/systemd-analyze", {
        args: ["verify", copy],
        env: { SYSTEMD_LOG_LEVEL: "warning" },
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assertEquals(output.code, 0, stderr);
      assertEquals(
        stderr.split("\n").filter((l) => l.includes("ws-daemon.service")),
        [],
        stderr,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

Deno.test("the Dockerfile builds in one stage and ships only the binary and its entrypoint", async () => {
  const text = await Deno.readTextFile(join(ROOT, "Dockerfile"));
  const stages = [...text.matchAll(/^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/gm)];
  assertEquals(stages.length, 2, "a builder stage and a runtime stage");
  assertEquals(stages[0][2], "builder");
  const runtime = text.slice(stages[1].index);
  assertMatch(text.slice(0, stages[1].index), /RUN make build/);
  const copies = [...runtime.matchAll(/^COPY\s+(.*)$/gm)].map((m) => m[1]);
  assertEquals(copies, [
    "--from=builder /build/ws-daemon /usr/local/bin/ws-daemon",
    "docker/entrypoint.sh /usr/local/bin/ws-daemon-entrypoint",
  ]);
  assertMatch(runtime, /WSDAEMON_PREFIX=\/usr\/src\/app/);
  assertMatch(runtime, /WSDAEMON_LOCAL_TCP=0\.0\.0\.0:9007/);
  assertMatch(
    runtime,
    /ENTRYPOINT \["\/usr\/local\/bin\/ws-daemon-entrypoint"\]/,
  );
  const syntax = await new Deno.Command("/bin/sh", {
    args: ["-n", ENTRYPOINT],
  }).output();
  assertEquals(syntax.code, 0, new TextDecoder().decode(syntax.stderr));
});

Deno.test("the entrypoint runs setup.sh once, then becomes the daemon with its arguments", async () => {
  const prefix = await Deno.makeTempDir();
  try {
    const fake = join(prefix, "fake-daemon");
    await Deno.writeTextFile(
      fake,
      '#!/bin/sh\necho "daemon $$ args: $*"\n',
      { mode: 0o755 },
    );
    await Deno.writeTextFile(
      join(prefix, "setup.sh"),
      'echo ran >> "$WSDAEMON_PREFIX/setup.log"\n',
    );
    const run = async () => {
      const output = await new Deno.Command(ENTRYPOINT, {
        args: ["run", "--log-level", "debug"],
        env: { WSDAEMON_PREFIX: prefix, WSDAEMON_BIN: fake },
      }).output();
      return {
        code: output.code,
        stdout: new TextDecoder().decode(output.stdout),
      };
    };
    for (let i = 0; i < 2; i++) {
      const { code, stdout } = await run();
      assertEquals(code, 0);
      assertMatch(stdout, /^daemon \d+ args: run --log-level debug\n$/);
    }
    assertEquals(
      await Deno.readTextFile(join(prefix, "setup.log")),
      "ran\n",
      "setup.sh ran once",
    );
  } finally {
    await Deno.remove(prefix, { recursive: true });
  }
});

Deno.test("CI runs make test on push and pull request; a v* tag releases four binaries with their .sha256", async () => {
  const ci = await Deno.readTextFile(join(ROOT, ".github/workflows/ci.yml"));
  assertMatch(ci, /^on:\n\s+push:\n\s+pull_request:/m);
  assertMatch(ci, /run: make test/);
  const release = await Deno.readTextFile(
    join(ROOT, ".github/workflows/release.yml"),
  );
  assertMatch(release, /tags: \["v\*"\]/);
  for (
    const target of [
      "x86_64-unknown-linux-gnu",
      "aarch64-unknown-linux-gnu",
      "x86_64-apple-darwin",
      "aarch64-apple-darwin",
    ]
  ) {
    assertMatch(release, new RegExp(`- ${target}\\n`));
  }
  assertMatch(
    release,
    /deno" compile --frozen \$\(cat scripts\/permissions\.txt\)/,
  );
  assertMatch(release, /--target \$\{\{ matrix\.target \}\}/);
  assertMatch(release, /sha256sum "\$name" > "\$name\.sha256"/);
});
