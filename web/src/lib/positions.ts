/**
 * Stream positions of the live sockets (docs/live.md): a frame's Kafka (partition, offset). A
 * client keeps the last position it saw and sends it back as `resume` when it reconnects, so it
 * gets exactly the frames after it. Offsets only grow within a partition; a frame from another
 * partition (the server's key moved after a repartition) starts a new sequence.
 */
export interface Position {
  partition: number;
  offset: number;
}

export class PositionTracker {
  private last: Position | null = null;

  /** Records a frame's position; false when it is not newer than the last one (a duplicate). */
  see(position: Position | null | undefined): boolean {
    if (!position) return true; // history rows from the database carry none
    const last = this.last;
    if (last && last.partition === position.partition && position.offset <= last.offset) return false;
    this.last = { partition: position.partition, offset: position.offset };
    return true;
  }

  /** What to send as `resume`; null before the first position (ask for history instead). */
  get resume(): Position | null {
    return this.last ? { ...this.last } : null;
  }

  reset(): void {
    this.last = null;
  }
}
