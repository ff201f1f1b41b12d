"use client";
import { useMemo } from "react";
import { assetPrecisions } from "@/lib/accountForms";
import { useMarkets } from "@/lib/markets";

/** The assets traded on the exchange with their precision (decimal places). */
export function useAssetPrecisions(): ReadonlyMap<string, number> {
  const markets = useMarkets();
  return useMemo(() => assetPrecisions(markets.data ?? []), [markets.data]);
}

/** Suggestions for an "Asset" input (`list={id}`): the user may still type any code. */
export function AssetOptions({ id, assets }: { id: string; assets: ReadonlyMap<string, number> }) {
  return (
    <datalist id={id}>
      {[...assets.keys()].map((asset) => (
        <option key={asset} value={asset} />
      ))}
    </datalist>
  );
}
