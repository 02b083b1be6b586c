// Shows a course's jobs as they progress, without reloading the page. Every value is set
// with textContent, so nothing a job's log or a repository holds can become markup.
"use strict";

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function render(table, jobs) {
  const body = document.createElement("tbody");
  if (jobs.length === 0) {
    const row = document.createElement("tr");
    cell(row, "No jobs yet.").colSpan = 6;
    body.appendChild(row);
  }
  for (const job of jobs) {
    const row = document.createElement("tr");
    row.dataset.job = String(job.id);
    row.dataset.done = job.done ? "yes" : "no";
    cell(row, String(job.id));
    cell(row, job.operation);
    cell(row, job.user);
    cell(row, job.state, "state");
    cell(row, job.conclusion || "", "conclusion");
    cell(row, job.duration === null ? "" : job.duration + " s");
    body.appendChild(row);
    const logRow = document.createElement("tr");
    logRow.className = "log";
    const td = cell(logRow, "");
    td.colSpan = 6;
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = job.title || "Log";
    const pre = document.createElement("pre");
    pre.textContent = job.log;
    details.append(summary, pre);
    td.appendChild(details);
    body.appendChild(logRow);
  }
  table.replaceChild(body, table.tBodies[0]);
}

async function poll(table) {
  try {
    const response = await fetch(table.dataset.source, {credentials: "same-origin"});
    if (response.ok) {
      const data = await response.json();
      if (data.reveals > 0) {
        // A job made a new password for this person: the page shows it once.
        location.reload();
        return;
      }
      render(table, data.jobs);
      if (data.jobs.some((job) => !job.done)) {
        setTimeout(() => poll(table), 1000);
        return;
      }
    }
  } catch (error) {
    // The service may be restarting: try again a little later.
  }
  setTimeout(() => poll(table), 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("job-table");
  if (table) poll(table);
});
