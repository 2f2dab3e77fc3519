import { assertEquals } from "../helpers/assert.ts";
import { startPair } from "../helpers/daemon.ts";
import { assertNoStrayAnswers, LocalClient } from "../helpers/local_client.ts";

const encoder = new TextEncoder();

function line(message: object): string {
  return JSON.stringify(message) + "\n";
}

Deno.test("the local socket frames one JSON message per line", async (t) => {
  await using pair = await startPair();
  const socket = pair.server.socket;

  await t.step(
    "two messages packed into one write get two answers",
    async () => {
      await using local = await LocalClient.connect(socket);
      await local.writeRaw(
        line({ name: "exit-with", id: "p1", params: 1 }) +
          line({ name: "exit-with", id: "p2", params: 2 }),
      );
      const answers = await local.take(2);
      assertEquals(
        answers.map(({ status, id }) => ({ status, id }))
          .sort((a, b) => String(a.id).localeCompare(String(b.id))),
        [{ status: 1, id: "p1" }, { status: 2, id: "p2" }],
      );
      await assertNoStrayAnswers(local, "after-packed");
    },
  );

  await t.step(
    "a message split across writes, even inside a character, is one message",
    async () => {
      await using local = await LocalClient.connect(socket);
      const bytes = encoder.encode(
        line({ name: "exit-with", id: "split-☃", params: 4 }),
      );
      // Cut after the first byte, inside the three bytes of "☃", and before "\n".
      const snowman = bytes.indexOf(0xe2);
      const cuts = [
        0,
        1,
        snowman + 1,
        snowman + 2,
        bytes.length - 1,
        bytes.length,
      ];
      for (let i = 0; i + 1 < cuts.length; i++) {
        await local.writeRaw(bytes.slice(cuts[i], cuts[i + 1]));
      }
      const answer = await local.next();
      assertEquals([answer.status, answer.id], [4, "split-☃"]);
      await assertNoStrayAnswers(local, "after-split");
    },
  );

  await t.step("blank lines get no answer", async () => {
    await using local = await LocalClient.connect(socket);
    await local.writeRaw(
      "\n\n   \n\t\n" + line({ name: "exit-with", id: "b", params: 3 }) +
        "\n\n",
    );
    const answer = await local.next();
    assertEquals([answer.status, answer.id], [3, "b"]);
    await assertNoStrayAnswers(local, "after-blank");
  });

  await t.step(
    "a last line without \\n before a half-close is answered, then the daemon closes",
    async () => {
      await using local = await LocalClient.connect(socket);
      await local.writeRaw(JSON.stringify({
        name: "exit-with",
        id: "last",
        params: 5,
      }));
      await local.closeWrite();
      const answer = await local.next();
      assertEquals([answer.status, answer.id], [5, "last"]);
      await local.ended();
      assertEquals(local.buffered, 0, "answers after the last one");
    },
  );

  await t.step(
    "after a half-close every answer to requests in flight arrives, then the connection ends",
    async () => {
      await using local = await LocalClient.connect(socket);
      const expected = [];
      for (let i = 0; i < 5; i++) {
        // The first sent finishes last.
        await local.send({
          name: "sleep-exit",
          id: `h${i}`,
          params: [(4 - i) * 0.1, 10 + i],
        });
        expected.push({ status: 10 + i, id: `h${i}` });
      }
      await local.closeWrite();
      const answers = await local.take(5, 15_000);
      assertEquals(
        answers.map(({ status, id }) => ({ status, id }))
          .sort((a, b) => String(a.id).localeCompare(String(b.id))),
        expected,
      );
      await local.ended();
      assertEquals(local.buffered, 0, "answers after the last one");
    },
  );
});
