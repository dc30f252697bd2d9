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
}
