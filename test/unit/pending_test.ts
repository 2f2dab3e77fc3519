import { assert, assertEquals } from "../helpers/assert.ts";
import { PendingTable } from "../../src/remote/pending.ts";

const noId = { hasId: false };
const id = (value: unknown) => ({ id: value, hasId: true });

Deno.test("a status with a ref takes exactly that request", () => {
  const table = new PendingTable<string>();
  const a = table.add("a", id("same"), false);
  const b = table.add("b", id("same"), true);
  const c = table.add("c", noId, true);
  assertEquals(new Set([a.ref, b.ref, c.ref]).size, 3, "refs are unique");
  assertEquals(table.size, 3);
  // The ref wins over the id, even when an older request has the same id.
  assertEquals(table.take({ status: 0, id: "same", ref: b.ref })?.owner, "b");
  assertEquals(table.take({ status: 0, ref: c.ref })?.owner, "c");
  assertEquals(table.size, 1);
  // A ref nobody holds matches nothing, and does not fall back to the id.
  assertEquals(table.take({ status: 0, id: "same", ref: b.ref }), undefined);
  assertEquals(table.take({ status: 0, id: "same", ref: "nope" }), undefined);
  assertEquals(table.size, 1);
  assertEquals(table.take({ status: 0, id: "same" })?.owner, "a");
  assertEquals(table.size, 0);
});

Deno.test("refs are unique across tables", () => {
  const one = new PendingTable<number>();
  const two = new PendingTable<number>();
  const ref = one.add(1, noId, false).ref;
  assert(
    two.add(2, noId, false).ref !== ref,
    "two tables handed out the same ref",
  );
});

Deno.test("a status without a ref takes the oldest request with its id", () => {
  const table = new PendingTable<string>();
  table.add("a1", id("x"), false);
  table.add("b", id("y"), false);
  table.add("a2", id("x"), false);
  table.add("a3", id("x"), false);
  table.add("n", id(7), false);
  assertEquals(table.take({ status: 0, id: "x" })?.owner, "a1");
  assertEquals(table.take({ status: 0, id: "x" })?.owner, "a2");
  assertEquals(table.take({ status: 0, id: "y" })?.owner, "b");
  assertEquals(table.take({ status: 0, id: "x" })?.owner, "a3");
  assertEquals(table.take({ status: 0, id: "x" }), undefined);
  // The number 7 is not the string "7".
  assertEquals(table.take({ status: 0, id: "7" }), undefined);
  assertEquals(table.take({ status: 0, id: 7 })?.owner, "n");
  assertEquals(table.size, 0);
});

Deno.test("statuses without an id take requests without an id, oldest first", () => {
  const table = new PendingTable<string>();
  table.add("first", noId, false);
  table.add("second", noId, false);
  // An id that no request can have (not a string or number) matches nothing.
  assertEquals(table.take({ status: 0, id: null }), undefined);
  assertEquals(table.take({ status: 0, id: [[["deep"]]] }), undefined);
  assertEquals(table.take({ status: 0 })?.owner, "first");
  assertEquals(table.take({ status: 0 })?.owner, "second");
  assertEquals(table.take({ status: 0 }), undefined);
  assertEquals(table.size, 0);
});

Deno.test("a status for an unknown id matches nothing and removes nothing", () => {
  const table = new PendingTable<string>();
  table.add("a", id("a"), false);
  table.add("n", noId, false);
  assertEquals(table.take({ status: 0, id: "b" }), undefined);
  assertEquals(table.take({ status: 0, id: null }), undefined);
  assertEquals(table.size, 2);
  const empty = new PendingTable<string>();
  assertEquals(empty.take({ status: 0 }), undefined);
  assertEquals(empty.take({ status: 0, id: "a" }), undefined);
});

Deno.test("remove takes a request out of both ref and id lookups", () => {
  const table = new PendingTable<string>();
  const a1 = table.add("a1", id("a"), false);
  const a2 = table.add("a2", id("a"), false);
  table.remove(a1);
  assertEquals(table.size, 1);
  assertEquals(table.take({ status: 0, ref: a1.ref }), undefined);
  assertEquals(table.take({ status: 0, id: "a" })?.owner, "a2");
  // Removing twice, or after a take, is harmless.
  table.remove(a1);
  table.remove(a2);
  assertEquals(table.size, 0);
  // A new request with the same id is found again.
  table.add("a3", id("a"), false);
  assertEquals(table.take({ status: 0, id: "a" })?.owner, "a3");
});

Deno.test("drain returns every request once and leaves the table empty", () => {
  const table = new PendingTable<string>();
  table.add("a", id("x"), false);
  table.add("b", noId, false);
  table.add("c", id("x"), false);
  const drained = table.drain();
  assertEquals(drained.map((entry) => entry.owner), ["a", "b", "c"]);
  assertEquals(
    drained.map((entry) => [entry.hasId, entry.id]),
    [[true, "x"], [false, undefined], [true, "x"]],
  );
  assertEquals(table.size, 0);
  assertEquals(table.take({ status: 0, id: "x" }), undefined);
  assertEquals(table.take({ status: 0 }), undefined);
  assertEquals(table.take({ status: 0, ref: drained[0].ref }), undefined);
  assertEquals(table.drain(), []);
  // The table is usable after a drain.
  table.add("d", noId, false);
  assertEquals(table.take({ status: 0 })?.owner, "d");
});

Deno.test("a request sent with its ref is never settled by its id", () => {
  const table = new PendingTable<string>();
  const sent = table.add("victim", id("victim-1"), true);
  const bare = table.add("bare", noId, true);
  assertEquals(table.take({ status: 77, id: "victim-1" }), undefined);
  assertEquals(table.take({ status: 77 }), undefined);
  assertEquals(table.take({ status: 77, ref: "0" }), undefined);
  assertEquals(table.size, 2);
  assertEquals(table.take({ status: 0, ref: sent.ref })?.owner, "victim");
  assertEquals(table.take({ status: 0, ref: bare.ref })?.owner, "bare");
});

Deno.test("refs are 128 random bits", () => {
  const table = new PendingTable<string>();
  const refs = Array.from(
    { length: 1000 },
    () => table.add("x", noId, true).ref,
  );
  assertEquals(new Set(refs).size, 1000);
  for (const ref of refs) assert(/^[0-9a-f]{32}$/.test(ref), ref);
});
