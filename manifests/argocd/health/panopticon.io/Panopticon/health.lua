-- Argo CD health of a panopticon.io/Panopticon, from its status conditions
-- (operator/src/conditions.rs). Not kstatus: the operator writes Ready/Progressing/Degraded
-- plus Paused, and status.observedGeneration for the generation its status describes.
--
--   no status, or observedGeneration < metadata.generation  -> Progressing (not observed yet)
--   spec.paused, or Paused=True                             -> Suspended
--   Degraded=True                                           -> Degraded (its message)
--   Ready=True                                              -> Healthy
--   otherwise                                               -> Progressing (Ready's message)
--
-- Written for Argo CD's Lua 5.1 (gopher-lua); tested with Debian's lua5.4 by
-- e2e/lint-manifests (health_test.yaml, testdata/).
local hs = {}

local function condition(status, type_)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function message_of(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
local generation = obj.metadata and obj.metadata.generation
if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the resource"
  return hs
end
if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local paused = condition(status, "Paused")
if (obj.spec ~= nil and obj.spec.paused == true) or (paused ~= nil and paused.status == "True") then
  hs.status = "Suspended"
  hs.message = message_of(paused, "Reconciliation is paused (spec.paused)")
  return hs
end

local degraded = condition(status, "Degraded")
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = message_of(degraded, degraded.reason or "Degraded")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(ready, "Ready")
  return hs
end

hs.status = "Progressing"
hs.message = message_of(ready, "Waiting for the Ready condition")
return hs
