// The terminal loss chart at the end of `stow train` (src/cli/loss_chart.ts), against charts worked out
// by hand.
import { describe, expect, it } from "vitest";
import { lossChart } from "../../src/cli/loss_chart.ts";

describe("lossChart", () => {
  it("draws one column per loss in eighth blocks, the axis from just below the lowest to the highest", () => {
    // Axis 0.70 (1 - 0.1 * (4 - 1)) to 4.00, 16 eighths high: 4 -> 16, 3 -> 11.2 ~ 11, 2 -> 6.3 ~ 6, 1 -> 1.5 ~ 1.
    expect(lossChart([4, 3, 2, 1], { height: 2 })).toEqual(["4.00 ┤█▃  ", "0.70 ┤██▆▁", "     └──── step 4"]);
  });

  it("averages groups of steps into at most `width` columns, and says how many steps there were", () => {
    // Columns 4, 2 and 1 on the same axis, 8 eighths high: 8, 3.2 ~ 3, 0.7 ~ 1.
    expect(lossChart([5, 3, 2, 2, 1.5, 0.5], { width: 3, height: 1 })).toEqual(["4.00 ┤█▃▁", "     └─── step 6"]);
  });

  it("draws nothing for a run without losses", () => {
    expect(lossChart([])).toEqual([]);
  });
});
