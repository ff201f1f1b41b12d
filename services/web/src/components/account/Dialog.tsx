"use client";
import { type ReactNode, useEffect, useId, useRef } from "react";

/**
 * A modal `<dialog>` (the browser traps focus, Escape closes it, the page behind is
 * inert), open while mounted, titled by its heading for screen readers.
 */
export function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDialogElement>(null);
  const titleId = useId();
  useEffect(() => {
    const dialog = ref.current;
    // No close() on cleanup: its asynchronous close event would call onClose after a
    // remount (React's strict mode); an unmounted dialog leaves the top layer anyway.
    if (dialog && !dialog.open) dialog.showModal();
  }, []);
  return (
    <dialog
      ref={ref}
      aria-labelledby={titleId}
      onClose={onClose}
      className="m-auto w-[min(36rem,calc(100vw-1rem))] rounded border border-line bg-panel p-4 text-fg backdrop:bg-black/70"
    >
      <h2 id={titleId} className="mb-3 text-base font-semibold">
        {title}
      </h2>
      {children}
    </dialog>
  );
}
