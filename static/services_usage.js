/* The Services tab's usage columns: one request for every service of the workspace (the console
   asks each server once); a server that did not answer shows "—". A warning marks a sandbox
   service near its storage cap (80%+) or throttled in the last hour. */
(function () {
  "use strict";
  const table = document.getElementById("services-table");
  if (!table) return;
  const cells = (row) => [row.querySelector(".usage-requests"), row.querySelector(".usage-storage")];
  const dash = (row) => cells(row).forEach((cell) => { cell.textContent = "—"; cell.title = "This service's server did not tell its usage."; });
  const mb = (bytes) => (bytes / (1024 * 1024)).toLocaleString(undefined, { maximumFractionDigits: 1 });

  fetch(table.dataset.usageUrl, { headers: { Accept: "application/json" } })
    .then((answer) => (answer.ok ? answer.json() : Promise.reject(new Error(answer.status))))
    .then((found) => {
      for (const row of table.querySelectorAll("tr[data-service-id]")) {
        const usage = found.services[row.dataset.serviceId];
        if (!usage) { dash(row); continue; }
        const [requests, storage] = cells(row);
        requests.textContent = usage.requests24h.toLocaleString();
        if (usage.throttled) {
          const warn = document.createElement("span");
          warn.className = "usage-warn";
          warn.dataset.testid = "throttled-warning";
          warn.textContent = ` ⚠ throttled`;
          warn.title = `In the last hour: ${usage.throttledLastHour} delayed, ${usage.refusedLastHour} refused by the sandbox throttle.`;
          requests.append(warn);
        }
        if (usage.storageBytes == null) storage.textContent = "—";
        else {
          storage.textContent = `${mb(usage.storageBytes)} MB` + (usage.capBytes ? ` of ${mb(usage.capBytes)} MB` : "");
          if (usage.nearCap) {
            storage.classList.add("usage-warn");
            storage.dataset.nearCap = "true";
            storage.title = "Near the storage cap: over it, writes are refused (code 1003).";
            storage.textContent += " ⚠";
          }
        }
      }
    })
    .catch(() => table.querySelectorAll("tr[data-service-id]").forEach(dash));
})();
