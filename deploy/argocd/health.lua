-- Argo CD health of a Sluice CanaryRollout, for argocd-cm:
--   resource.customizations.health.sluice.dev_CanaryRollout
-- status.phase decides; the message is the phase and the operator's status.message.
-- docs/gitops.md explains the mapping; tests/argocd_health.rs runs this file.
local hs = {}

local function condition(status, kind)
  for _, c in ipairs(status.conditions or {}) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sluice operator to adopt the target"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sluice operator to act on generation " .. generation
  return hs
end

local health = {
  Idle = "Healthy",
  Succeeded = "Healthy",
  Progressing = "Progressing",
  Promoting = "Progressing",
  -- Held on purpose (spec.paused, an error-budget freeze, a DeliveryFreeze, a parity
  -- emergency, or a ReleasePipeline waiting for the environment before): stable serves.
  Paused = "Suspended",
  Frozen = "Suspended",
  Waiting = "Suspended",
  -- The candidate failed, or the spec cannot run: a person has to act.
  RolledBack = "Degraded",
  Invalid = "Degraded",
}

hs.status = health[status.phase]
-- An in-flight rollout held at its stage by a DeliveryFreeze: on purpose, and not progressing.
local frozen = condition(status, "Frozen")
if status.phase == "Progressing" and frozen ~= nil and frozen.status == "True" then
  hs.status = "Suspended"
end
if hs.status == nil then
  -- A phase newer than this script: read the kstatus conditions instead.
  local stalled = condition(status, "Stalled")
  local ready = condition(status, "Ready")
  if stalled ~= nil and stalled.status == "True" then
    hs.status = "Degraded"
  elseif ready ~= nil and ready.status == "True" then
    hs.status = "Healthy"
  else
    hs.status = "Progressing"
  end
end

hs.message = status.phase
if status.message ~= nil and status.message ~= "" then
  hs.message = status.phase .. ": " .. status.message
end
return hs
