import { describe, expect, it } from "vitest";
import { histogramQuantile, renderExposition } from "./exposition";

describe("the Prometheus text exposition", () => {
  it("writes HELP and TYPE before the samples, and escapes help text and label values", () => {
    const text = renderExposition([
      { name: "gantry_things_total", help: 'Things, counted.\nA back\\slash "quoted" stays as is in help.', type: "counter", samples: [{ labels: { kind: 'say "hi"\\\n' }, value: 3 }, { value: 1.5 }] },
      { name: "gantry_level", help: "A level.", type: "gauge", samples: [{ value: Infinity }, { labels: { a: "x" }, value: NaN }] },
    ]);
    expect(text).toBe(
      [
        '# HELP gantry_things_total Things, counted.\\nA back\\\\slash "quoted" stays as is in help.',
        "# TYPE gantry_things_total counter",
        'gantry_things_total{kind="say \\"hi\\"\\\\\\n"} 3',
        "gantry_things_total 1.5",
        "# HELP gantry_level A level.",
        "# TYPE gantry_level gauge",
        "gantry_level +Inf",
        'gantry_level{a="x"} NaN',
        "",
      ].join("\n"),
    );
  });

  it("writes a histogram as cumulative buckets ending in +Inf, then _sum and _count", () => {
    const text = renderExposition([{ name: "gantry_job_duration_seconds", help: "How long.", type: "histogram", buckets: [0.5, 1, 10], series: [{ labels: { kind: "a" }, counts: [2, 0, 3, 1], sum: 42.25 }] }]);
    expect(text.trim().split("\n")).toEqual([
      "# HELP gantry_job_duration_seconds How long.",
      "# TYPE gantry_job_duration_seconds histogram",
      'gantry_job_duration_seconds_bucket{kind="a",le="0.5"} 2',
      'gantry_job_duration_seconds_bucket{kind="a",le="1"} 2',
      'gantry_job_duration_seconds_bucket{kind="a",le="10"} 5',
      'gantry_job_duration_seconds_bucket{kind="a",le="+Inf"} 6',
      'gantry_job_duration_seconds_sum{kind="a"} 42.25',
      'gantry_job_duration_seconds_count{kind="a"} 6',
    ]);
  });

  it("refuses names the format does not allow, a family twice, and a histogram with the wrong number of counts", () => {
    expect(() => renderExposition([{ name: "bad-name", help: "", type: "gauge", samples: [] }])).toThrow(/Not a metric name/);
    expect(() => renderExposition([{ name: "ok", help: "", type: "gauge", samples: [{ labels: { "bad-label": "x" }, value: 1 }] }])).toThrow(/Not a label name/);
    expect(() => renderExposition([{ name: "ok", help: "", type: "gauge", samples: [] }, { name: "ok", help: "", type: "gauge", samples: [] }])).toThrow(/twice/);
    expect(() => renderExposition([{ name: "h", help: "", type: "histogram", buckets: [1], series: [{ counts: [1], sum: 1 }] }])).toThrow(/needs 2 counts/);
  });

  it("estimates quantiles from buckets as histogram_quantile does", () => {
    expect(histogramQuantile([1, 2, 4], [0, 0, 0, 0], 0.5)).toBeNull();
    expect(histogramQuantile([1, 2, 4], [10, 0, 0, 0], 0.5)).toBe(0.5);
    expect(histogramQuantile([1, 2, 4], [0, 10, 10, 0], 0.75)).toBe(3);
    expect(histogramQuantile([1, 2, 4], [0, 0, 0, 5], 0.5)).toBe(4);
  });
});
