import { assert, assertEquals } from "../helpers/assert.ts";
import { TokenBucket } from "../../src/trust/rate.ts";
import { allows, BearerCheck, matchesAny } from "../../src/trust/auth.ts";
import { scrubEnv } from "../../src/trust/scrub_env.ts";

const SECRET = "s".repeat(24);
const TOKEN = "t".repeat(24);

Deno.test("a token bucket gives its burst at once, then its rate", () => {
  const bucket = new TokenBucket({ perSecond: 10, burst: 3 });
  const t0 = 1_000;
  assertEquals([1, 2, 3, 4].map(() => bucket.take(t0)), [
    true,
    true,
    true,
    false,
  ]);
  assertEquals(bucket.take(t0 + 50), false, "half a token after 50 ms");
  assertEquals(bucket.take(t0 + 100), true, "one token after 100 ms");
  assertEquals(bucket.take(t0 + 100), false);
  // Idle time refills up to the burst, never past it.
  assertEquals(
    [1, 2, 3, 4].map(() => bucket.take(t0 + 60_000)),
    [true, true, true, false],
  );
});

Deno.test("the bearer check names the peer by its token, else the secret", () => {
  const check = new BearerCheck({
    secret: SECRET,
    peers: [{ name: "web-1", token: TOKEN }],
  });
  assertEquals(check.open, false);
  assertEquals(check.check(`Bearer ${TOKEN}`), { kind: "peer", name: "web-1" });
  assertEquals(check.check(`bearer  ${SECRET}`), { kind: "secret" });
  for (
    const [header, reason] of [
      [null, "no Authorization header"],
      [`Basic ${SECRET}`, "Authorization is not a Bearer token"],
      ["Bearer", "Authorization is not a Bearer token"],
      [`Bearer ${SECRET}x`, "wrong secret or token"],
      [`Bearer ${TOKEN.slice(1)}`, "wrong secret or token"],
    ] as const
  ) {
    assertEquals(
      check.check(header),
      { kind: "refused", reason },
      header ?? "",
    );
  }
});

Deno.test("a server with neither secret nor peers is open", () => {
  const check = new BearerCheck({ peers: [] });
  assert(check.open);
  assertEquals(check.check(null), { kind: "open" });
  assertEquals(check.check("Bearer anything"), { kind: "open" });
});

Deno.test("name lists: globs with *, an unset list allows all", () => {
  assert(matchesAny("deploy-web", ["deploy-*"]));
  assert(matchesAny("x", ["*"]));
  assert(!matchesAny("deploy", ["deploy-*"]));
  assert(!matchesAny("a.b", ["a?b", "a+b", "a*c"]), "only * is special");
  assert(matchesAny("a.b", ["a.b"]));
  assert(allows(undefined, "anything"));
  assert(!allows([], "anything"));
});

Deno.test("scrubEnv removes secrets by glob, in any case, and always WSDAEMON_SECRET", () => {
  const env = {
    WSDAEMON_SECRET: "x",
    my_api_token: "t",
    DB_PASSWORD: "p",
    SSH_KEY_PATH: "k",
    PATH: "/bin",
    HOME: "/root",
  };
  assertEquals(
    scrubEnv(env, ["*SECRET*", "*TOKEN*", "*PASSWORD*", "*KEY*"]),
    { PATH: "/bin", HOME: "/root" },
  );
  assertEquals(Object.keys(scrubEnv(env, ["home"])).sort(), [
    "DB_PASSWORD",
    "PATH",
    "SSH_KEY_PATH",
    "my_api_token",
  ]);
});
