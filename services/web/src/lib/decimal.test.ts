import { describe, expect, it } from "vitest";
import {
  add,
  ceilToStep,
  cmp,
  compareDecimalStrings,
  decimalsOf,
  floorToStep,
  formatByStep,
  formatDecimal,
  groupThousands,
  isDecimalInput,
  mul,
  onGrid,
  percentOf,
  sub,
  trimZeros,
} from "./decimal";

describe("decimal arithmetic on strings", () => {
  it("has no float drift", () => {
    expect(add("0.1", "0.2")).toBe("0.3");
    expect(mul("1.1", "1.1")).toBe("1.21");
    expect(sub("0.3", "0.1")).toBe("0.2");
    expect(mul("0.00000001", "123456789.12345678")).toBe("1.2345678912345678");
  });

  it("compares by value", () => {
    expect(cmp("10.0", "9.99")).toBe(1);
    expect(cmp("1.000", "1")).toBe(0);
    expect(cmp("0.1", "0.10000001")).toBe(-1);
  });

  it("orders decimal strings by value without parsing them", () => {
    const cases: Array<[string, string, -1 | 0 | 1]> = [
      ["9.5", "10.0", -1],
      ["100", "99.999", 1],
      ["1.50", "1.5", 0],
      ["0.1", ".10", 0],
      ["007", "7.000", 0],
      ["922337203685477580.7", "922337203685477580.6", 1],
      ["0.00000001", "0.000000009", 1],
    ];
    for (const [a, b, expected] of cases) {
      expect(compareDecimalStrings(a, b)).toBe(expected);
      expect(compareDecimalStrings(a, b)).toBe(cmp(a, b));
    }
  });

  it("rounds to a step and checks the grid from a base", () => {
    expect(floorToStep("1.23456", "0.001")).toBe("1.234");
    expect(ceilToStep("1.2341", "0.001")).toBe("1.235");
    expect(onGrid("0.3", "0.1")).toBe(true);
    expect(onGrid("0.35", "0.1")).toBe(false);
    expect(onGrid("1.05", "0.1", "0.05")).toBe(true);
  });

  it("computes a percentage, zero of nothing", () => {
    expect(percentOf("25", "200")).toBe("12.5");
    expect(percentOf("1", "0")).toBe("0");
  });

  it("accepts only plain non-negative decimals as input", () => {
    for (const ok of ["1", "0.5", ".5", "2.", "1000000"]) expect(isDecimalInput(ok)).toBe(true);
    for (const bad of ["", "-1", "1e5", "1,5", "abc", "1.2.3", "NaN", "Infinity"]) expect(isDecimalInput(bad)).toBe(false);
  });
});

describe("formatting by the market's precisions", () => {
  it("reads the decimals of a tick or step size", () => {
    expect(decimalsOf("0.01000000")).toBe(2);
    expect(decimalsOf("0.00001")).toBe(5);
    expect(decimalsOf("1.00000000")).toBe(0);
    expect(decimalsOf("10")).toBe(0);
  });

  it("trims and groups", () => {
    expect(trimZeros("1.2300")).toBe("1.23");
    expect(trimZeros("5.000")).toBe("5");
    expect(trimZeros("100")).toBe("100");
    expect(groupThousands("1234567.891")).toBe("1,234,567.891");
    expect(groupThousands("-1234")).toBe("-1,234");
    expect(groupThousands("999")).toBe("999");
  });

  it("formats to the step, rounding down unless told", () => {
    expect(formatByStep("1234.5", "0.01")).toBe("1,234.50");
    expect(formatByStep("0.123456789", "0.00001")).toBe("0.12345");
    expect(formatDecimal("0.125", 2, { rounding: "half-up" })).toBe("0.13");
    expect(formatDecimal("1234.5000", 4, { trim: true, group: false })).toBe("1234.5");
    expect(formatDecimal("99999999999999999.99", 2)).toBe("99,999,999,999,999,999.99");
  });
});
