import { assertEquals } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { LocalClient } from "../helpers/local_client.ts";

Deno.test("a script runs on the peer and its exit code returns, both ways", async () => {
  await using pair = await startPair();
  for (
    const [from, label] of [[pair.server, "s"], [pair.client, "c"]] as const
  ) {
    await using local = await LocalClient.connect(from.socket);
    for (let code = 0; code <= 5; code++) {
      const answer = await local.request({
        name: "exit-with",
        id: `${label}${code}`,
        params: code,
      });
      assertEquals(answer.status, code);
      assertEquals(answer.id, `${label}${code}`);
    }
  }
});
