local function f(n) return f(n + 1) + 1 end
for i = 1, 1e9 do pcall(f, 1) end
