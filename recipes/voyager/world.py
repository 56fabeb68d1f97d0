# A small text crafting world for Voyager's loop, standing in for Minecraft (run in the sandbox).
#
# The world is a line of chunks, each with blocks drawn from its seed: logs near the start,
# stone and coal everywhere, iron a little further, diamonds deep and far. The agent stands in
# one chunk, carries an inventory, and uses a Mineflayer-like API on `bot`: mine_block,
# craft_item, place_item, smelt_item, explore_until, inventory, nearby_blocks, chat. Tools gate
# the tech tree as Minecraft's do: stone and coal need a wooden pickaxe, iron a stone one,
# diamond an iron one; crafting beyond the 2x2 grid needs a placed crafting table nearby and
# smelting a placed furnace. State is a small JSON object (position, inventory, what was mined
# and placed per chunk, the tick), so a program runs in a fresh process: load, act, dump.
#
# This file is rendered as a template into each program, so it must not contain the template
# language's opening marks (two braces, brace-percent, brace-hash).
import ast
import json
import random
import traceback

MARKER = "@@WORLD@@"
END = "@@END@@"

# Block -> (item it drops, pickaxe needed: 0 none, 1 wooden, 2 stone, 3 iron).
BLOCKS = {
    "oak_log": ("oak_log", 0),
    "birch_log": ("birch_log", 0),
    "dirt": ("dirt", 0),
    "sand": ("sand", 0),
    "stone": ("cobblestone", 1),
    "coal_ore": ("coal", 1),
    "iron_ore": ("raw_iron", 2),
    "gold_ore": ("raw_gold", 3),
    "diamond_ore": ("diamond", 3),
}
PICKAXES = {"wooden_pickaxe": 1, "stone_pickaxe": 2, "iron_pickaxe": 3, "diamond_pickaxe": 4}
# Item -> (count made, ingredients, needs a crafting table).
RECIPES = {
    "oak_planks": (4, [("oak_log", 1)], False),
    "birch_planks": (4, [("birch_log", 1)], False),
    "stick": (4, [("planks", 2)], False),
    "crafting_table": (1, [("planks", 4)], False),
    "wooden_pickaxe": (1, [("planks", 3), ("stick", 2)], True),
    "wooden_sword": (1, [("planks", 2), ("stick", 1)], True),
    "wooden_axe": (1, [("planks", 3), ("stick", 2)], True),
    "chest": (1, [("planks", 8)], True),
    "stone_pickaxe": (1, [("cobblestone", 3), ("stick", 2)], True),
    "stone_sword": (1, [("cobblestone", 2), ("stick", 1)], True),
    "stone_axe": (1, [("cobblestone", 3), ("stick", 2)], True),
    "furnace": (1, [("cobblestone", 8)], True),
    "torch": (4, [("coal", 1), ("stick", 1)], False),
    "iron_pickaxe": (1, [("iron_ingot", 3), ("stick", 2)], True),
    "iron_sword": (1, [("iron_ingot", 2), ("stick", 1)], True),
    "bucket": (1, [("iron_ingot", 3)], True),
    "shield": (1, [("planks", 6), ("iron_ingot", 1)], True),
    "golden_pickaxe": (1, [("gold_ingot", 3), ("stick", 2)], True),
    "diamond_pickaxe": (1, [("diamond", 3), ("stick", 2)], True),
    "diamond_sword": (1, [("diamond", 2), ("stick", 1)], True),
}
SMELTING = {"raw_iron": "iron_ingot", "raw_gold": "gold_ingot", "sand": "glass", "cobblestone": "stone"}
FUELS = {"coal": 8, "oak_planks": 1, "birch_planks": 1, "oak_log": 1, "birch_log": 1, "stick": 0.5}
PLACEABLE = {"crafting_table", "furnace", "chest", "torch"}
# Milestones of the tech tree, in order.
MILESTONES = ["wooden_pickaxe", "stone_pickaxe", "iron_pickaxe", "diamond_pickaxe"]


class WorldError(Exception):
    """An action that cannot be done, with a reason the agent reads."""


def chunk_blocks(seed, index):
    """The blocks a chunk starts with: the same for the same seed and index."""
    rng = random.Random(seed * 1000003 + index)
    blocks = {"dirt": rng.randint(4, 12), "stone": rng.randint(10, 30)}
    if index < 6 or rng.random() < 0.4:
        blocks["oak_log" if rng.random() < 0.6 else "birch_log"] = rng.randint(2, 7)
    if rng.random() < 0.6:
        blocks["coal_ore"] = rng.randint(1, 5)
    if rng.random() < 0.3:
        blocks["sand"] = rng.randint(2, 8)
    if index >= 3 and rng.random() < 0.45:
        blocks["iron_ore"] = rng.randint(1, 4)
    if index >= 6 and rng.random() < 0.2:
        blocks["gold_ore"] = rng.randint(1, 3)
    if index >= 10 and rng.random() < 0.25:
        blocks["diamond_ore"] = rng.randint(1, 3)
    return blocks


class Bot:
    """The agent's body in the world: the API that programs call."""

    def __init__(self, state):
        self.seed = int(state.get("seed", 0))
        self.position = int(state.get("position", 0))
        self.inventory_items = dict(state.get("inventory", {}))
        self.mined = {k: dict(v) for k, v in state.get("mined", {}).items()}
        self.placed = {k: list(v) for k, v in state.get("placed", {}).items()}
        self.tick = int(state.get("tick", 0))
        self.events = []
        self.ever = set(state.get("ever", []))

    # -- observation -----------------------------------------------------------------------
    def nearby_blocks(self):
        """The blocks left in the current chunk, by name."""
        start = chunk_blocks(self.seed, self.position)
        gone = self.mined.get(str(self.position), {})
        return {name: count - gone.get(name, 0) for name, count in start.items() if count - gone.get(name, 0) > 0}

    def inventory(self):
        """The inventory: item name -> count."""
        return dict(self.inventory_items)

    def placed_nearby(self):
        return list(self.placed.get(str(self.position), []))

    def chat(self, message):
        self.events.append(f"chat: {message}")

    # -- inventory helpers -----------------------------------------------------------------
    def _count(self, item):
        if item == "planks":
            return sum(n for name, n in self.inventory_items.items() if name.endswith("_planks"))
        return self.inventory_items.get(item, 0)

    def _take(self, item, count):
        if item == "planks":
            for name in sorted(self.inventory_items):
                if name.endswith("_planks") and count > 0:
                    used = min(count, self.inventory_items[name])
                    self._take(name, used)
                    count -= used
            return
        self.inventory_items[item] -= count
        if self.inventory_items[item] <= 0:
            del self.inventory_items[item]

    def _give(self, item, count):
        self.inventory_items[item] = self.inventory_items.get(item, 0) + count
        self.ever.add(item)

    def _pickaxe_level(self):
        return max([level for name, level in PICKAXES.items() if self._count(name) > 0] + [0])

    # -- actions -----------------------------------------------------------------------------
    def mine_block(self, name, count=1):
        """Mine `count` blocks of `name` in the current chunk; their drops go to the inventory."""
        if name not in BLOCKS:
            raise WorldError(f"no block named {name}; blocks are: {', '.join(sorted(BLOCKS))}")
        drop, level = BLOCKS[name]
        if self._pickaxe_level() < level:
            need = [p for p, l in PICKAXES.items() if l == level][0]
            raise WorldError(f"mining {name} needs at least a {need}")
        here = self.nearby_blocks().get(name, 0)
        if here == 0:
            raise WorldError(f"there is no {name} nearby; explore to find some")
        done = min(count, here)
        gone = self.mined.setdefault(str(self.position), {})
        gone[name] = gone.get(name, 0) + done
        self._give(drop, done)
        self.tick += done
        self.events.append(f"mined {done} {name}")
        if done < count:
            raise WorldError(f"only {done} {name} were nearby; mined them; explore to find more")

    def craft_item(self, name, count=1):
        """Craft `count` times the recipe of `name` (a crafting table must be placed nearby for most)."""
        if name not in RECIPES:
            raise WorldError(f"no recipe for {name}")
        made, ingredients, table = RECIPES[name]
        if table and "crafting_table" not in self.placed_nearby():
            raise WorldError(f"crafting {name} needs a crafting table placed nearby")
        for _ in range(count):
            for item, n in ingredients:
                if self._count(item) < n:
                    raise WorldError(f"crafting {name} needs {n} {item}, the inventory has {self._count(item)}")
            for item, n in ingredients:
                self._take(item, n)
            self._give(name, made)
            self.tick += 1
        self.events.append(f"crafted {count * made} {name}")

    def place_item(self, name):
        """Place a crafting table, furnace, chest or torch in the current chunk."""
        if name not in PLACEABLE:
            raise WorldError(f"{name} cannot be placed; placeable: {', '.join(sorted(PLACEABLE))}")
        if self._count(name) < 1:
            raise WorldError(f"there is no {name} in the inventory")
        self._take(name, 1)
        self.placed.setdefault(str(self.position), []).append(name)
        self.tick += 1
        self.events.append(f"placed {name}")

    def smelt_item(self, name, fuel, count=1):
        """Smelt `count` of `name` with `fuel` in a furnace placed nearby."""
        if name not in SMELTING:
            raise WorldError(f"{name} cannot be smelted")
        if "furnace" not in self.placed_nearby():
            raise WorldError("smelting needs a furnace placed nearby")
        if fuel not in FUELS:
            raise WorldError(f"{fuel} is not a fuel; fuels: {', '.join(sorted(FUELS))}")
        if self._count(name) < count:
            raise WorldError(f"smelting needs {count} {name}, the inventory has {self._count(name)}")
        fuel_needed = -(-count // int(max(1, FUELS[fuel]))) if FUELS[fuel] >= 1 else count * 2
        if self._count(fuel) < fuel_needed:
            raise WorldError(f"smelting {count} {name} needs {fuel_needed} {fuel}")
        self._take(name, count)
        self._take(fuel, fuel_needed)
        self._give(SMELTING[name], count)
        self.tick += count
        self.events.append(f"smelted {count} {name}")

    def explore_until(self, name, max_chunks=20):
        """Walk on, chunk by chunk, until a chunk has the block `name` (at most `max_chunks`)."""
        if name not in BLOCKS:
            raise WorldError(f"no block named {name}")
        for _ in range(max_chunks):
            self.position += 1
            self.tick += 5
            if self.nearby_blocks().get(name, 0) > 0:
                self.events.append(f"explored to chunk {self.position} and found {name}")
                return True
        self.events.append(f"explored to chunk {self.position} and found no {name}")
        return False

    # -- state -------------------------------------------------------------------------------
    def state(self):
        return {
            "seed": self.seed,
            "position": self.position,
            "inventory": dict(sorted(self.inventory_items.items())),
            "mined": self.mined,
            "placed": self.placed,
            "tick": self.tick,
            "ever": sorted(self.ever),
        }

    def observation(self):
        return {
            "position": self.position,
            "inventory": dict(sorted(self.inventory_items.items())),
            "nearby_blocks": self.nearby_blocks(),
            "placed_nearby": self.placed_nearby(),
        }


def last_function(code):
    """The name of the last top-level function the code defines."""
    names = [node.name for node in ast.parse(code).body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not names:
        raise WorldError("the program defines no function; write one function that takes bot")
    return names[-1]


def run_program(state, skills_code, code):
    """Run the skills and the program's last function on the world; print the new state."""
    bot = Bot(state)
    error = ""
    if code.strip():
        namespace = {"bot": bot, "WorldError": WorldError}
        try:
            exec(compile(skills_code or "", "<skills>", "exec"), namespace)
            exec(compile(code, "<program>", "exec"), namespace)
            namespace[last_function(code)](bot)
        except WorldError as failure:
            error = f"{type(failure).__name__}: {failure}"
        except Exception as failure:  # the program's own bug: its last frames, as Voyager shows them
            frames = traceback.format_exception(type(failure), failure, failure.__traceback__)
            error = "".join(frames[-2:]).strip()
    out = {"state": bot.state(), "observation": bot.observation(), "events": bot.events, "error": error,
           "milestones": [m for m in MILESTONES if m in bot.ever]}
    print(MARKER + json.dumps(out) + END)
