--[[
slurm-vgpu: refuse unusable vgpu requests at submit, with a vgpu message (job_submit/lua).

Install as job_submit.lua beside slurm.conf and set JobSubmitPlugins=lua (or paste the
vgpu_check() call into a site's own job_submit.lua). It refuses
  --gres=vgpu:0                     (zero slices: use no --gres, or --gres=vgpu:N with N >= 1)
  --gres=vgpu:999, vgpu:-1, vgpu:abc (more slices than any node has, or not a count)
  --vgpu-share=... without any vgpu request
and names the largest request a node can take: the largest Gres=vgpu:N on slurm.conf's
NodeName lines (and the files it Includes). docs/security.md.

It also holds new vgpu batch jobs for the cluster controller's placement, while the
controller steers (docs/placement.md): a single-node batch job with --gres=vgpu:N and no
--begin, -w, -x or --constraint of its own gets a BeginTime a few seconds ahead; the
controller's next cycle names its node and makes it eligible at once. Only while the
controller's steering file (STEER_FILE, written by root every cycle) is fresh: when the
controller stops, no job is held, and a held job starts at its BeginTime where Slurm puts it.
While the GPU nodes' CPUs bind, the file also names the partitions (all of whose nodes are
managed GPU nodes) whose new single-node CPU-only batch jobs are held too.
]]

local GRES = "vgpu"
-- steering.file in the controller's vgpu-daemon.yaml (the controller runs on this host)
local STEER_FILE = "/run/slurm-vgpu/steering"
local NO_VAL = 4294967294

local function dirname(path)
   return path:match("^(.*)/[^/]*$") or "."
end

local function conf_path()
   local env = os.getenv("SLURM_CONF")
   if env and env ~= "" then return env end
   local src = debug.getinfo(1, "S").source
   if src:sub(1, 1) == "@" then return dirname(src:sub(2)) .. "/slurm.conf" end
   return "/etc/slurm/slurm.conf"
end

-- the largest vgpu count of any NodeName line (nil: none found)
local function largest_node(path, depth, best)
   if depth > 4 then return best end
   local f = io.open(path, "r")
   if not f then return best end
   for line in f:lines() do
      line = line:gsub("#.*$", "")
      local inc = line:match("^%s*[Ii]nclude%s+(%S+)")
      if inc then
         if inc:sub(1, 1) ~= "/" then inc = dirname(path) .. "/" .. inc end
         best = largest_node(inc, depth + 1, best)
      elseif line:match("^%s*[Nn]ode[Nn]ame=") then
         local gres = line:match("[Gg]res=(%S+)")
         if gres then
            local total = 0
            for item in (gres .. ","):gmatch("([^,]*),") do
               local name, rest = item:match("^([%w_]+)(.*)$")
               if name == GRES then
                  total = total + (tonumber(rest:match("(%d+)$") or "1") or 0)
               end
            end
            if total > 0 and (best == nil or total > best) then best = total end
         end
      end
   end
   f:close()
   return best
end

-- every vgpu request in a TRES string ("gres:vgpu:3", "gres/vgpu=3", "gres:vgpu:t:3")
local function vgpu_requests(tres)
   local out = {}
   if type(tres) ~= "string" then return out end
   for item in (tres .. ","):gmatch("([^,]*),") do
      local rest = item:match("^gres[:/]" .. GRES .. "(.*)$")
      if rest then table.insert(out, rest) end
   end
   return out
end

local function has_share_option(job_desc)
   for _, field in ipairs({"spank_job_env", "environment"}) do
      local ok, env = pcall(function() return job_desc[field] end)
      if ok and type(env) == "table" then
         for k, v in pairs(env) do
            local s = (type(k) == "string" and k .. "=" or "") .. tostring(v)
            if s:find("SPANK_OPTION_vgpu_vgpu_share", 1, true) or
               s:find("SPANK_OPTION_vgpu_vgpu-share", 1, true) then
               return true
            end
         end
      end
   end
   return false
end

function vgpu_check(job_desc)
   local largest = largest_node(conf_path(), 0, nil)
   local most = largest and ("the largest request a node can take is --gres=" .. GRES .. ":" ..
                             largest) or "no node has vgpu slices"
   local found = false
   for _, field in ipairs({"tres_per_node", "tres_per_job", "tres_per_task", "tres_per_socket"}) do
      for _, rest in ipairs(vgpu_requests(job_desc[field])) do
         found = true
         local count = rest:match("^[:=](%-?%d+)$") or rest:match("^:[^:]+:(%-?%d+)$")
         if rest == "" then count = "1" end
         local n = tonumber(count or "")
         local shown = GRES .. rest
         if n == nil then
            return "vgpu: --gres=" .. shown .. " is not a slice count; use --gres=" .. GRES ..
               ":N with N from 1 to " .. (largest or 0) .. " (" .. most .. ")"
         elseif n <= 0 then
            return "vgpu: --gres=" .. shown .. " asks for no slices; use --gres=" .. GRES ..
               ":N with N from 1 to " .. (largest or 0) .. ", or no vgpu request at all"
         elseif largest == nil or n > largest then
            return "vgpu: --gres=" .. shown .. " is more slices than any node has; " .. most
         end
      end
   end
   if not found and has_share_option(job_desc) then
      return "vgpu: --vgpu-share only applies to jobs with --gres=" .. GRES ..
         ":N; add one or drop --vgpu-share"
   end
   return nil
end

-- seconds to hold a new job for the controller (nil: it is not steering now), and the set
-- of partitions whose CPU-only jobs it steers too ("*" names the default partition). The
-- file is "<written, unix time> <hold seconds> <fresh for seconds>[ <partition>,...]", the
-- default partition's name followed by "*".
local function steering_hold(now)
   local f = io.open(STEER_FILE, "r")
   if not f then return nil end
   local line = f:read("*l") or ""
   f:close()
   local at, hold, fresh, parts = line:match("^(%d+) (%d+) (%d+)$")
   if not at then
      at, hold, fresh, parts = line:match("^(%d+) (%d+) (%d+) (%S+)$")
   end
   at, hold, fresh = tonumber(at), tonumber(hold), tonumber(fresh)
   if not at or now - at > fresh or hold < 1 or hold > 600 then return nil end
   local cpu = {}
   for name in (parts or ""):gmatch("[^,]+") do
      if name:sub(-1) == "*" then
         name = name:sub(1, -2)
         cpu["*"] = true
      end
      cpu[name] = true
   end
   return hold, cpu
end

local function unset(v)
   return v == nil or v == "" or (type(v) == "number" and (v == 0 or v >= NO_VAL))
end

-- --exclusive (=user, =mcs, ...): shared is JOB_SHARED_NONE (0), USER (2), ...; unset is
-- NO_VAL16, --oversubscribe 1
local function exclusive(job_desc)
   local shared = job_desc.shared
   return type(shared) == "number" and shared ~= 1 and shared < 65534
end

-- batch, one node, nothing pinned (nodes, features, a reservation), not exclusive: a job
-- the controller may place (an exclusive job cannot start beside others, on the used nodes
-- the steering prefers; a reservation's job only on the reservation's nodes, which the
-- steering does not read)
local function placeable(job_desc)
   if job_desc.script == nil then return false end  -- srun/salloc: nobody waits on a hold
   if exclusive(job_desc) then return false end
   -- an array's pending tasks are one squeue record the controller does not steer
   if not unset(job_desc.array_inx) then return false end
   local nodes = job_desc.min_nodes
   if not (unset(nodes) or nodes == 1) then return false end
   return unset(job_desc.begin_time) and unset(job_desc.req_nodes) and
      unset(job_desc.exc_nodes) and unset(job_desc.features) and
      unset(job_desc.reservation)
end

-- any GRES item in a TRES string (Slurm 23.02 on also puts "cpu=N" there for -c)
local function has_gres(tres)
   if type(tres) ~= "string" then return false end
   for item in (tres .. ","):gmatch("([^,]*),") do
      if item:match("^gres[:/]") then return true end
   end
   return false
end

-- "vgpu": a vgpu count per node and no other vgpu request; "cpu": no GRES at all; else nil
local function request_kind(job_desc)
   local per_node = vgpu_requests(job_desc.tres_per_node)
   for _, field in ipairs({"tres_per_job", "tres_per_task", "tres_per_socket"}) do
      if #vgpu_requests(job_desc[field]) > 0 then return nil end
   end
   if #per_node == 1 and per_node[1]:match("^[:=]%d+$") then return "vgpu" end
   for _, field in ipairs({"tres_per_node", "tres_per_job", "tres_per_task",
                           "tres_per_socket"}) do
      if has_gres(job_desc[field]) then return nil end
   end
   return "cpu"
end

-- every partition the job names (or the default one) is one the controller steers
local function in_partitions(job_desc, cpu)
   local named = job_desc.partition
   if unset(named) then return cpu["*"] == true end
   for name in tostring(named):gmatch("[^,]+") do
      if not cpu[name] then return false end
   end
   return true
end

function vgpu_hold(job_desc)
   if not placeable(job_desc) then return end
   local kind = request_kind(job_desc)
   if kind == nil then return end
   local now = os.time()
   local hold, cpu = steering_hold(now)
   if not hold or (kind == "cpu" and not in_partitions(job_desc, cpu)) then return end
   job_desc.begin_time = now + hold
end

function slurm_job_submit(job_desc, part_list, submit_uid)
   local err = vgpu_check(job_desc)
   if err then
      slurm.log_user("%s", err)
      slurm.log_info("job_submit/lua: uid %s refused: %s", tostring(submit_uid), err)
      return slurm.ERROR
   end
   vgpu_hold(job_desc)
   return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
   local err = vgpu_check(job_desc)
   if err then
      slurm.log_user("%s", err)
      return slurm.ERROR
   end
   return slurm.SUCCESS
end

return slurm.SUCCESS
