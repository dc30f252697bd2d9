import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { BarChart } from "./bar-chart";

const texts = (svg: string) => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);

describe("BarChart", () => {
  it("draws a linear axis with round ticks from zero, its label, a row per category and a bar per value", () => {
    const html = renderToStaticMarkup(
      createElement(BarChart, {
        xLabel: "queue entries",
        stacked: true,
        rows: [{ label: "datasets.encode-episode", values: [7, 0, 2] }, { label: "fleet.deploy-device", values: [1, 1, 0] }],
        series: [{ label: "waiting", color: "#d97706" }, { label: "scheduled", color: "#a1a1aa" }, { label: "running", color: "#2563eb" }],
      }),
    );
    expect(texts(html)).toEqual(["0", "2", "4", "6", "8", "10", "queue entries", "datasets.encode-episode", "fleet.deploy-device"]);
    // Zero values draw nothing; each bar says what it is.
    expect(html.match(/<rect/g)).toHaveLength(4);
    expect(html).toContain("<title>datasets.encode-episode · running: 2</title>");
    expect(html).toContain('aria-label="waiting, scheduled, running by queue entries, 2 rows"');
  });

  it("draws a log axis in powers of ten spanning the values", () => {
    const html = renderToStaticMarkup(
      createElement(BarChart, {
        xLabel: "seconds",
        log: true,
        rows: [{ label: "a", values: [0.3, 40] }],
        series: [{ label: "median", color: "#000" }, { label: "95th percentile", color: "#999" }],
      }),
    );
    expect(texts(html).slice(0, 4)).toEqual(["0.1", "1", "10", "100"]);
    expect(html.match(/<rect/g)).toHaveLength(2);
  });
});
