import { assertEquals, assertMatch } from "../helpers/assert.ts";
import { Prefix, serverConfig } from "../helpers/daemon.ts";
import { runCli } from "../helpers/cli.ts";

Deno.test("check is clean on a good prefix, then catches a script that cannot run and a secret others can read", async () => {
  await using prefix = await Prefix.create(
    serverConfig({ secretFile: "secret" }),
    { scripts: ["noop", "print"] },
  );
  await Deno.writeTextFile(prefix.file("secret"), "s".repeat(32) + "\n", {
    mode: 0o600,
  });
  await Deno.chmod(prefix.file("secret"), 0o600);
  const clean = await runCli(["check", "--prefix", prefix.path]);
  assertEquals(clean.code, 0, clean.stdout + clean.stderr);
  assertMatch(clean.stdout, /config\.json: ok \(server mode\)/);
  assertMatch(clean.stdout, /scripts: 2 can run: noop, print/);
  assertMatch(clean.stdout, /clean: nothing to fix/);

  await Deno.writeTextFile(prefix.file("scripts", "notes.txt"), "hello\n", {
    mode: 0o644,
  });
  await Deno.chmod(prefix.file("scripts", "notes.txt"), 0o644);
  await Deno.chmod(prefix.file("secret"), 0o644);
  const dirty = await runCli(["check", "--prefix", prefix.path]);
  assertEquals(dirty.code, 1, dirty.stdout + dirty.stderr);
  assertMatch(
    dirty.stdout,
    /problem: scripts\/notes\.txt is not executable \(mode 0644\); run: chmod \+x /,
  );
  assertMatch(
    dirty.stdout,
    /problem: .*secret holds a secret and is readable by group or others \(mode 0644\)/,
  );
  assertMatch(dirty.stdout, /2 problem\(s\) found/);

  await prefix.writeConfig(serverConfig({ socketMode: "0666", port: "x" }));
  const bad = await runCli(["check", "--prefix", prefix.path]);
  assertEquals(bad.code, 78);
  assertEquals(bad.stderr.trim().split("\n").length, 1, bad.stderr);

  await prefix.writeConfig(serverConfig({ socketMode: "0666" }));
  const open = await runCli(["check", "--prefix", prefix.path]);
  assertEquals(open.code, 1);
  assertMatch(
    open.stdout,
    /socketMode "0666" lets any local user send requests/,
  );
});

Deno.test("check: a script whose #! interpreter is missing cannot run, and says so", async () => {
  await using prefix = await Prefix.create(
    serverConfig({ host: "127.0.0.1" }),
    { scripts: ["noop"] },
  );
  await Deno.writeTextFile(
    prefix.file("scripts", "badinterp"),
    "#!/nonexistent/interp\necho hi\n",
    { mode: 0o755 },
  );
  await Deno.chmod(prefix.file("scripts", "badinterp"), 0o755);
  const run = await runCli(["check", "--prefix", prefix.path]);
  assertEquals(run.code, 1, run.stdout);
  assertMatch(run.stdout, /scripts: 1 can run: noop/);
  assertMatch(
    run.stdout,
    /problem: scripts\/badinterp cannot start: its #! line names \/nonexistent\/interp/,
  );
});
