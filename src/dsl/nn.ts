// Modules with named parameters, in the PyTorch style: a parameter's name is the path of fields that
// leads to it (transformer.h.0.attn.c_attn.weight). A parameter reachable twice (a tied weight) is
// named once, at its first path, and stored once.
import { Parameter, init, type ParallelHint } from "./parameter.ts";
import type { Tensor } from "./tensor.ts";
import { dropout, embedding, layerNorm, rmsNorm } from "./functional.ts";
import { traceErrorHere } from "./trace.ts";

export abstract class Module {
  /** Parameters in definition order (fields in the order they were assigned), tied ones once. */
  namedParameters(prefix = "", seen = new Set<Parameter>()): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [key, field] of Object.entries(this)) {
      const name = prefix ? `${prefix}.${key}` : key;
      if (field instanceof Parameter) {
        if (!seen.has(field)) out.push([name, field]);
        seen.add(field);
      } else if (field instanceof Module) {
        out.push(...field.namedParameters(name, seen));
      }
    }
    return out;
  }
}

/** A list of modules named 0, 1, 2, ... like torch.nn.ModuleList. */
export class ModuleList<M extends Module> extends Module {
  constructor(items: M[]) {
    super();
    items.forEach((m, i) => ((this as unknown as Record<string, M>)[String(i)] = m));
  }
  get items(): M[] {
    return Object.values(this).filter((v): v is M => v instanceof Module);
  }
}

export interface LinearOptions {
  bias?: boolean;
  std?: number;
  /**
   * Tensor parallelism (Megatron-LM): "column" cuts the output features across ranks (the bias too),
   * "row" cuts the input features (the bias stays whole). A column-parallel layer is followed by a
   * row-parallel one, with no communication in between. "vocab": the output features are a vocabulary
   * (an untied LM head): cut like "column", but padded to a multiple of the ranks where they do not
   * divide it, as a vocabulary-parallel embedding is; the loss of its logits is then vocabulary-parallel.
   */
  parallel?: "column" | "row" | "vocab";
  /** Column-parallel: the output features are this many equal blocks, each cut across ranks (q, k, v). */
  groups?: number;
}

/** y = x Wᵀ + b with W of shape [out, in] (PyTorch layout). */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias?: Parameter;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    const hint: ParallelHint | undefined = opts.parallel && { style: opts.parallel, groups: opts.groups ?? 1 };
    this.weight = new Parameter([outFeatures, inFeatures], init.normal(opts.std ?? 0.02), hint);
    const cutBias = hint?.style === "column" || hint?.style === "vocab";
    if (opts.bias !== false) this.bias = new Parameter([outFeatures], init.zeros(), cutBias ? hint : undefined);
  }
  forward(x: Tensor): Tensor {
    const features = x.shape[x.shape.length - 1];
    if (features !== this.inFeatures)
      throw traceErrorHere(
        `shape error: Linear(${this.inFeatures} -> ${this.outFeatures}) got an input of shape ` +
          `[${x.shape.join(",")}], whose last dimension is ${features}, not ${this.inFeatures}`,
      );
    const lead = x.shape.slice(0, -1);
    const rows = x.reshape(-1, this.inFeatures);
    let y = rows.matmul(this.weight.t, { transposeOther: true });
    if (this.bias) y = y.add(this.bias.t);
    return y.reshape(...lead, this.outFeatures);
  }
}

export class Embedding extends Module {
  readonly weight: Parameter;
  /** `parallel: "vocab"` cuts the table's rows across ranks under tensor parallelism. */
  constructor(
    readonly count: number,
    readonly dim: number,
    opts: { std?: number; parallel?: "vocab" } = {},
  ) {
    super();
    this.weight = new Parameter([count, dim], init.normal(opts.std ?? 0.02), opts.parallel && { style: "vocab", groups: 1 });
  }
  forward(indices: Tensor): Tensor {
    return embedding(this.weight.t, indices);
  }
}

/** RMSNorm over the last axis with a weight (initialized to ones), as torch.nn.RMSNorm and Llama. */
export class RMSNorm extends Module {
  readonly weight: Parameter;
  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    this.weight = new Parameter([dim], init.ones());
  }
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight.t, this.eps);
  }
}

/** Dropout with probability p (torch.nn.Dropout): the identity in inference and for p = 0. No parameters. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p < 1)) throw traceErrorHere(`Dropout: the probability p must be in [0, 1), got ${p}`);
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p);
  }
}

/** LayerNorm over the last axis; `{ bias: false }` drops the bias (PaLM). */
export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias?: Parameter;
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    opts: { bias?: boolean } = {},
  ) {
    super();
    this.weight = new Parameter([dim], init.ones());
    if (opts.bias !== false) this.bias = new Parameter([dim], init.zeros());
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight.t, this.bias?.t, this.eps);
  }
}
