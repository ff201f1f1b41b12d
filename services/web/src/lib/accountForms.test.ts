import { describe, expect, it } from "vitest";
import { assetPrecisions, balanceRows, checkAddress, checkAmount, checkAsset, checkKeyDraft, safeNext, showAmount } from "./accountForms";

const precisions = assetPrecisions([
  { baseAsset: "BTC", quoteAsset: "USDT", baseAssetPrecision: 8, quoteAssetPrecision: 2 },
  { baseAsset: "ETH", quoteAsset: "BTC", baseAssetPrecision: 6, quoteAssetPrecision: 8 },
]);

describe("assetPrecisions", () => {
  it("lists every base and quote asset once, sorted", () => {
    expect([...precisions.entries()]).toEqual([
      ["BTC", 8],
      ["ETH", 6],
      ["USDT", 2],
    ]);
  });
});

describe("checkAsset", () => {
  it("normalises the code and refuses unknown or malformed assets", () => {
    expect(checkAsset(" usdt ", precisions)).toEqual({ asset: "USDT" });
    expect(checkAsset("DOGE", precisions)).toEqual({ error: "DOGE is not traded on this exchange." });
    expect(checkAsset("US DT")).toHaveProperty("error");
    expect(checkAsset("")).toHaveProperty("error");
    expect(checkAsset("DOGE")).toEqual({ asset: "DOGE" }); // no list known yet: the API decides
  });
});

describe("checkAmount", () => {
  it("accepts positive decimals within the precision", () => {
    expect(checkAmount(" 1000 ", 2)).toEqual({ amount: "1000" });
    expect(checkAmount("0.00000001", 8)).toEqual({ amount: "0.00000001" });
    expect(checkAmount(".5")).toEqual({ amount: ".5" });
  });

  it("says what is wrong", () => {
    expect(checkAmount("")).toEqual({ error: "Enter an amount." });
    expect(checkAmount("1e3")).toEqual({ error: "The amount must be a number like 12.5." });
    expect(checkAmount("-1")).toEqual({ error: "The amount must be a number like 12.5." });
    expect(checkAmount("0.000")).toEqual({ error: "The amount must be above zero." });
    expect(checkAmount("1.005", 2)).toEqual({ error: "At most 2 decimal places." });
    expect(checkAmount("1.5", 0)).toEqual({ error: "The amount must be a whole number." });
    expect(checkAmount("1.500", 1)).toEqual({ amount: "1.500" }); // trailing zeros are not precision
  });
});

describe("checkAddress", () => {
  it("accepts printable addresses and refuses spaces or overlong ones", () => {
    expect(checkAddress(" bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh ")).toEqual({ address: "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh" });
    expect(checkAddress("two words")).toHaveProperty("error");
    expect(checkAddress("")).toHaveProperty("error");
    expect(checkAddress("a".repeat(257))).toHaveProperty("error");
    expect(checkAddress("a".repeat(256))).toEqual({ address: "a".repeat(256) });
  });
});

describe("checkKeyDraft", () => {
  const pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----";

  it("builds the request in the API's permission order", () => {
    expect(checkKeyDraft({ label: " bot ", permissions: ["trade", "read"], type: "HMAC", publicKey: "ignored" })).toEqual({
      request: { label: "bot", permissions: ["read", "trade"], type: "HMAC" },
    });
    expect(checkKeyDraft({ label: "", permissions: ["withdraw"], type: "ED25519", publicKey: `\n${pem}\n` })).toEqual({
      request: { label: "", permissions: ["withdraw"], type: "ED25519", publicKey: pem },
    });
  });

  it("refuses no permission, a long label, and an Ed25519 key without a PEM", () => {
    expect(checkKeyDraft({ label: "", permissions: [], type: "HMAC", publicKey: "" })).toEqual({ error: "Choose at least one permission." });
    expect(checkKeyDraft({ label: "x".repeat(65), permissions: ["read"], type: "HMAC", publicKey: "" })).toHaveProperty("error");
    expect(checkKeyDraft({ label: "", permissions: ["read"], type: "ED25519", publicKey: "abc" })).toHaveProperty("error");
  });
});

describe("safeNext", () => {
  it("keeps paths of this site", () => {
    expect(safeNext("/account/api-keys")).toBe("/account/api-keys");
    expect(safeNext("/trade/BTCUSDT?x=1")).toBe("/trade/BTCUSDT?x=1");
  });

  it("refuses other origins, the login page and nothing", () => {
    for (const bad of [null, undefined, "", "https://evil.example", "//evil.example", "/\\evil.example", "javascript:alert(1)", "/login", "/login?next=/x", "/a\nb"]) {
      expect(safeNext(bad)).toBe("/");
    }
  });
});

describe("balanceRows", () => {
  it("totals exactly, formats by precision, drops zeros and sorts", () => {
    const rows = balanceRows(
      [
        { asset: "USDT", free: "0.1", locked: "0.2" },
        { asset: "BTC", free: "1.5", locked: "0" },
        { asset: "ETH", free: "0", locked: "0" },
        { asset: "XYZ", free: "7", locked: "0" },
      ],
      precisions,
    );
    expect(rows).toEqual([
      { asset: "BTC", free: "1.50000000", locked: "0.00000000", total: "1.50000000" },
      { asset: "USDT", free: "0.10", locked: "0.20", total: "0.30" },
      { asset: "XYZ", free: "7", locked: "0", total: "7" },
    ]);
  });

  it("keeps zero balances when asked", () => {
    expect(balanceRows([{ asset: "ETH", free: "0", locked: "0" }], precisions, true)).toHaveLength(1);
  });
});

describe("showAmount", () => {
  it("groups and trims when the precision is known, else keeps the API's text", () => {
    expect(showAmount("1000.000000", 6)).toBe("1,000");
    expect(showAmount("12.500000", 6)).toBe("12.5");
    expect(showAmount("12.500000", undefined)).toBe("12.500000");
  });
});
