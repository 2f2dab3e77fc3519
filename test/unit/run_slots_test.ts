import { assertEquals } from "../helpers/assert.ts";
import { RunSlots } from "../../src/run_slots.ts";

Deno.test("run slots: a full queue refuses at once; a slot given back goes to the oldest waiter", async () => {
  const slots = new RunSlots(1, 1);
  assertEquals(await slots.acquire(), true);
  const order: string[] = [];
  const second = slots.acquire().then((ok) => order.push(`second ${ok}`));
  assertEquals(await slots.acquire(), false, "queue of 1 is full");
  slots.release();
  await second;
  assertEquals(order, ["second true"]);
  assertEquals(slots.active, 1);
  slots.release();
  assertEquals(slots.active, 0);
});

Deno.test("run slots: a higher limit starts waiters at once, a lower one lets the runs finish", async () => {
  const slots = new RunSlots(2, 10);
  await slots.acquire();
  await slots.acquire();
  const started: number[] = [];
  const waiters = [1, 2, 3].map((n) =>
    slots.acquire().then(() => started.push(n))
  );
  slots.resize(1, 10);
  slots.release(); // over the lower limit: not handed on
  assertEquals(slots.active, 1);
  slots.resize(3, 10); // room for two more now
  assertEquals(slots.active, 3);
  await waiters[0];
  await waiters[1];
  assertEquals(started, [1, 2], "the two oldest, the third still waits");
  slots.resize(4, 10);
  await waiters[2];
  assertEquals([slots.active, started], [4, [1, 2, 3]]);
});
