"""`play`: a video of the trained agent playing one game on an evaluation seed (.mp4 through ffmpeg, or a GIF).

The game is rendered only here: training and evaluation never draw the screen unless
the agent sees pixels.
"""

from pathlib import Path

from common import runs
from common.errors import UserError
from projects.flappy_dqn import data
from projects.flappy_dqn.evaluate import game_settings, load_agent


def play(args):
    """One game of the greedy agent on an evaluation seed, saved as a video (.mp4, or .gif with Pillow)."""
    out = runs.check_new_file(args.out, args.overwrite)
    if out.suffix.lower() not in (".mp4", ".gif"):
        raise UserError(f"--out must end in .mp4 or .gif, got {out.name}")
    screens, score, fps = record_game(load_agent(args.model), args)
    write_video(screens, Path(out), fps)
    print(f"score {score:.0f} in {len(screens)} pictures; saved {out}")
    return 0


def record_game(agent, args):
    """One game of the greedy `agent` (what `load_agent` returns) on the evaluation seed --episode, at most --seconds
    long: (its screens, its score, the video's frames per second)."""
    from projects.flappy_dqn.agent import greedy_actions

    _, network, networks, saved = agent
    game_kwargs = game_settings(args, saved, network, networks)
    game = data.Game(**game_kwargs, render=True)
    observation = game.reset(data.episode_seed("evaluation", args.episode))
    screens, frames_per_second = [game.screen()], 30
    done = False
    while not done and len(screens) < args.seconds * frames_per_second:
        action = greedy_actions(network, observation[None])[0]
        observation, _, terminated, truncated = game.step(action)
        screens.append(game.screen())
        done = terminated or truncated
    game.close()
    return screens, game.score, frames_per_second // max(1, game_kwargs["frame_skip"])


def write_video(screens, out, fps):
    """MP4 through imageio's ffmpeg, or an animated GIF (Pillow)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with runs.atomic_path(out) as temporary:
        if out.suffix.lower() == ".mp4":
            import imageio.v2 as imageio

            imageio.mimsave(temporary, screens, fps=fps, macro_block_size=8)
        else:
            from PIL import Image

            # Every second picture at half size: a GIF of a long game stays a few megabytes.
            pictures = [Image.fromarray(screen).reduce(2) for screen in screens[::2]]
            pictures[0].save(temporary, save_all=True, append_images=pictures[1:], duration=int(2000 / fps), loop=0)
