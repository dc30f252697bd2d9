/**
 * Why a running job was stopped when its worker shut down: not a failure and not a cancel.
 * The job goes back to the queue with the attempt given back, and goes on from where it
 * stood when a worker runs it again. Its message is what the queue records as the entry's
 * last error, and how an interrupted entry is found again.
 */
export class JobInterruptedError extends Error {
  static readonly MESSAGE = "Interrupted: its worker was stopped; it goes on when a worker runs it again";
  constructor() {
    super(JobInterruptedError.MESSAGE);
    this.name = "JobInterruptedError";
  }
}

/**
 * Why a run stopped when its worker had been taken for dead (not heard from within the
 * window) and the job handed on to another worker: the job is that worker's now, so this run
 * stops and writes nothing more. An interruption, so services leave their work as a crash
 * would, for the run that took over.
 */
export class JobTakenOverError extends JobInterruptedError {
  constructor() {
    super();
    this.message = "Stopped: its worker was taken for dead and the job handed on to another worker";
    this.name = "JobTakenOverError";
  }
}

export function isTakenOver(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && signal.reason instanceof JobTakenOverError;
}

/** Whether a job's signal aborted because its worker is shutting down (not a cancel). */
export function isInterrupted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true && signal.reason instanceof JobInterruptedError;
}

/** The AbortControllers of the jobs running in this process, by job id. */
export class CancellationRegistry {
  private readonly running = new Map<string, AbortController>();

  register(jobId: string): AbortController {
    const controller = new AbortController();
    this.running.set(jobId, controller);
    return controller;
  }

  unregister(jobId: string, controller: AbortController): void {
    if (this.running.get(jobId) === controller) this.running.delete(jobId);
  }

  cancel(jobId: string): boolean {
    const controller = this.running.get(jobId);
    controller?.abort(new Error("Cancelled"));
    return controller !== undefined;
  }

  /** Stops a job handed on to another worker; returns whether it was running here. */
  abandon(jobId: string): boolean {
    const controller = this.running.get(jobId);
    controller?.abort(new JobTakenOverError());
    return controller !== undefined;
  }

  /** Stops every running job for a shutdown; returns how many were running. */
  interruptAll(): number {
    for (const controller of this.running.values()) controller.abort(new JobInterruptedError());
    return this.running.size;
  }
}
